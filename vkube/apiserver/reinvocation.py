"""Upstream's admission ``ReinvocationContext``: when a mutating webhook or policy changes the
object, the whole mutating chain runs a second time (``reinvoker.Admit``) — every in-tree
plugin again (a container a webhook added gets LimitRanger's defaults and the token mount),
then only the ``reinvocationPolicy: IfNeeded`` webhooks and policies that ran before a later
change (or before the in-tree plugins changed the object in the second round)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

from vkube.api.jsonvalue import clone

__all__ = ["Reinvocation", "Rounds"]


@dataclass(slots=True)
class Rounds:
    """One dynamic plugin's part (``webhookReinvokeContext`` / ``policyReinvokeContext``)."""

    previously: set[Hashable] = field(default_factory=set)  # IfNeeded ones called so far
    again: set[Hashable] = field(default_factory=set)  # the ones the second round calls
    last_output: Any = None

    def require(self) -> None:
        """``RequireReinvokingPreviouslyInvokedPlugins``."""
        self.again |= self.previously
        self.previously = set()


@dataclass(slots=True)
class Reinvocation:
    second_round: bool = False  # ``IsReinvoke``
    wanted: bool = False  # ``ShouldReinvoke``
    plugins: dict[str, Rounds] = field(default_factory=dict)

    def begin(self, plugin: str, obj: Any) -> Rounds:
        """A plugin's state as it starts; in the second round, an object changed since the
        plugin last ran (by in-tree plugins) re-invokes all its IfNeeded invocations."""
        rounds = self.plugins.setdefault(plugin, Rounds())
        if self.second_round and rounds.last_output != obj:
            rounds.require()
        return rounds

    def skip(self, rounds: Rounds, key: Hashable) -> bool:
        """In the second round only the invocations asked for run (never a first call)."""
        return self.second_round and key not in rounds.again

    def ran(self, rounds: Rounds, key: Hashable, *, changed: bool, if_needed: bool) -> None:
        if changed:
            rounds.require()
            self.wanted = True
        if if_needed:
            rounds.previously.add(key)

    def end(self, rounds: Rounds, obj: Any) -> None:
        rounds.last_output = clone(obj) if obj is not None else None

    @property
    def round(self) -> int:
        return 1 if self.second_round else 0
