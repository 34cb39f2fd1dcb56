"""What a simulated container "does", read from its command line: how long it runs, how it
exits and what it prints. Enough shell to cover the commands people put in examples
(``sleep 3600``, ``sh -c "echo hi; exit 3"``, ``true``), never a real interpreter."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from vkube.api.meta import Obj
from vkube.host import execsim

SHELLS = {"sh", "bash", "ash", "dash", "zsh", "/bin/sh", "/bin/bash", "/bin/ash", "/usr/bin/bash",
          "/bin/dash", "/bin/zsh", "/usr/bin/env"}
# Images whose default command is a shell: with no command and no stdin they exit 0 at once.
SHELL_IMAGES = {"busybox", "alpine", "ubuntu", "debian", "bash", "centos", "fedora", "rockylinux",
                "almalinux", "amazonlinux"}
_LOOP = re.compile(r"\b(while|until|for)\b")
_IF = re.compile(r"(^|[;&|\s])if\s")


@dataclass
class ExitPlan:
    """``run_seconds`` None means the container runs until stopped."""

    run_seconds: float | None = None
    exit_code: int = 0
    output: list[str] = field(default_factory=list)
    #: a shell reading its open stdin (``kubectl run -i``, ``kubectl debug -i``): it runs what
    #: an attached client types, and ends on `exit` (or when stdin closes, with stdinOnce)
    interactive: bool = False

    @property
    def exits(self) -> bool:
        return self.run_seconds is not None


def parse_duration(text: str) -> float | None:
    """``sleep`` arguments: ``10``, ``1.5``, ``2m``, ``1h``, ``infinity`` (None)."""
    text = text.strip()
    if text in ("inf", "infinity"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def image_name(image: str) -> str:
    """``docker.io/library/nginx:1.27@sha256:…`` → ``nginx``."""
    base = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return base.split(":", 1)[0]


#: the variables every container gets from the kubelet and its image, before its own ``env``
_BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "HOME": "/root"}


def pod_hostname(pod: Obj) -> str:
    """The kubelet's rule (``GeneratePodHostNameAndDomain``): ``spec.hostname``, else the pod's
    name cut to 63. A virtual cluster's syncer sets ``spec.hostname`` to the virtual pod's name,
    so everything a simulated pod says about itself (``hostname``, ``$HOSTNAME``, /etc/hosts,
    its logs, its listener's answer) names it as its tenant does, never by its host name."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return spec.get("hostname") or str(meta.get("name") or "")[:63].rstrip("-.")


def container_env(pod: Obj, container: str) -> dict[str, str]:
    """The environment a container of ``pod`` sees: ``HOSTNAME``, the image's and the
    kubelet's variables, then the container's own literal ``env`` (which wins)."""
    env = {"HOSTNAME": pod_hostname(pod), **_BASE_ENV}
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) + (spec.get("ephemeralContainers") or []):
        if c.get("name") == container:
            env.update({e["name"]: str(e["value"]) for e in c.get("env") or () if "name" in e and "value" in e})
            break
    return env


def plan_for(container: Obj, *, env: dict[str, str] | None = None) -> ExitPlan:
    argv = [str(a) for a in (container.get("command") or [])] + [str(a) for a in (container.get("args") or [])]
    shell = image_name(container.get("image", "")) in SHELL_IMAGES if not argv else (
        argv[0] in SHELLS and argv[0] != "/usr/bin/env"
        and not any(a.startswith("-") and "c" in a[1:] for a in argv[1:]))
    if shell and container.get("stdin"):
        return ExitPlan(None, 0, interactive=True)
    if not argv:
        if image_name(container.get("image", "")) in SHELL_IMAGES:
            return ExitPlan(0.0, 0)
        return ExitPlan(None, 0, default_output(container))
    return plan_argv(argv, env or _env(container))


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or () if "name" in e}


def plan_argv(argv: list[str], env: dict[str, str]) -> ExitPlan:
    if argv[0] in SHELLS:
        rest = argv[1:]
        if argv[0] == "/usr/bin/env":
            return plan_argv(rest, env) if rest else ExitPlan(0.0, 0, [f"{k}={v}" for k, v in env.items()])
        flags = [i for i, a in enumerate(rest) if a.startswith("-") and "c" in a[1:]]
        if flags:
            i = flags[0]
            return plan_script(rest[i + 1] if i + 1 < len(rest) else "", env)
        return ExitPlan(0.0, 0)  # a shell with no script and no stdin exits at once
    plan = ExitPlan(0.0, 0)
    simple = _simple(argv, env, plan)
    return plan if simple else ExitPlan(None, 0, [])


def _simple(argv: list[str], env: dict[str, str], plan: ExitPlan) -> bool:
    """Apply one simple command to ``plan``; False if it is not one we simulate (a server)."""
    cmd = argv[0].rsplit("/", 1)[-1]
    args = argv[1:]
    if cmd == "sleep":
        total = 0.0
        for a in args or ["0"]:
            try:
                d = parse_duration(a)
            except ValueError:
                plan.output.append(f"sleep: invalid time interval '{a}'")
                plan.exit_code = 1
                return True
            if d is None:
                plan.run_seconds = None
                return True
            total += d
        if plan.run_seconds is not None:
            plan.run_seconds += total
        plan.exit_code = 0
    elif cmd == "echo":
        if args and args[0] == "-n":
            args = args[1:]
        plan.output.append(" ".join(args))
        plan.exit_code = 0
    elif cmd in ("true", ":"):
        plan.exit_code = 0
    elif cmd == "false":
        plan.exit_code = 1
    elif cmd == "exit":
        plan.exit_code = int(args[0]) % 256 if args and args[0].lstrip("-").isdigit() else plan.exit_code
    elif cmd in ("env", "printenv"):
        plan.output.extend([f"{k}={v}" for k, v in env.items()] if not args else [env.get(a, "") for a in args])
        plan.exit_code = 0
    elif cmd == "date":
        plan.output.append("Thu Jan  1 00:00:00 UTC 1970")
    elif cmd == "hostname" and not args:
        plan.output.append(env.get("HOSTNAME", ""))
        plan.exit_code = 0
    elif cmd in ("hostname", "ls", "cat", "pwd", "id", "whoami", "uname", "nslookup", "wget", "curl"):
        plan.exit_code = 0
    else:
        return False
    return True


def plan_script(script: str, env: dict[str, str]) -> ExitPlan:
    """A ``sh -c`` script: ``;``, ``&&``, ``||`` and newlines between simple commands.
    Loops, or commands we do not know, mean a long-running process."""
    if _LOOP.search(script):
        return ExitPlan(None, 0, [])
    plan = ExitPlan(0.0, 0)
    if _IF.search(script):  # ``if … then exit N; fi``: the shell's own parser
        try:
            _plan_list(execsim.parse_script(script), env, plan)
        except ValueError:
            return ExitPlan(None, 0, [])
        return plan
    tokens = _split_script(script)
    skip = False
    for sep, words in tokens:
        if sep == "&&":
            skip = plan.exit_code != 0
        elif sep == "||":
            skip = plan.exit_code == 0
        else:
            skip = False
        if skip or not words:
            continue
        words = [_expand(w, env) for w in words]
        if words[0] == "exec":
            words = words[1:] or ["true"]
        if words[0] == "exit":
            _simple(words, env, plan)  # a bare "exit" keeps the last status
            return plan
        if not _simple(words, env, plan):
            return ExitPlan(None, 0, plan.output)
        if plan.run_seconds is None:
            return plan
    return plan


def _plan_list(items: list, env: dict[str, str], plan: ExitPlan) -> bool:
    """Apply a parsed script (``execsim.parse_script``) to ``plan``; True once it stops
    there (``exit``, a process that runs until stopped, a command we do not simulate)."""
    for sep, node in items:
        if not (sep == ";" or (sep == "&&") == (plan.exit_code == 0)):
            continue
        if isinstance(node, execsim.If):
            for cond, body in node.branches:
                if _plan_list(cond, env, plan):
                    return True
                if plan.exit_code == 0:
                    if _plan_list(body, env, plan):
                        return True
                    break
            else:
                plan.exit_code = 0
                if _plan_list(node.orelse, env, plan):
                    return True
            continue
        words = [_expand(w, env) for w in node]
        if words[0] == "exec":
            words = words[1:] or ["true"]
        if words[0] == "exit":
            _simple(words, env, plan)
            return True
        if not _simple(words, env, plan):
            plan.run_seconds, plan.exit_code = None, 0
            return True
        if plan.run_seconds is None:
            return True
    return False


def _split_script(script: str) -> list[tuple[str, list[str]]]:
    """[(separator before, words)], separators ``;`` ``&&`` ``||`` (newlines count as ``;``)."""
    lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    out: list[tuple[str, list[str]]] = []
    sep, words = "", []
    for tok in lex:
        if tok in (";", "&&", "||", "&", "|"):
            out.append((sep, words))
            sep, words = (";" if tok in ("&", "|") else tok), []
        else:
            words.append(tok)
    out.append((sep, words))
    return out


def _expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), word)


def default_output(container: Obj) -> list[str]:
    """Start-up lines of a long-running container without a command (nginx-like)."""
    name = image_name(container.get("image", ""))
    if name in ("nginx", "nginx-unprivileged", "openresty"):
        return [
            "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration",
            "/docker-entrypoint.sh: Looking for shell scripts in /docker-entrypoint.d/",
            "/docker-entrypoint.sh: Configuration complete; ready for start up",
            "[notice] 1#1: using the \"epoll\" event method",
            "[notice] 1#1: nginx/1.27.3",
            "[notice] 1#1: start worker processes",
        ]
    if name in ("redis", "valkey"):
        return ["1:M * Server initialized", "1:M * Ready to accept connections tcp"]
    return [f"{name} started"] if name else []
