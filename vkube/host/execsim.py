"""What ``kubectl exec`` runs in a simulated container: a simulated pod has no processes and no
file system, so a small, honest set of commands is answered here and everything else fails the
way a shell fails on a missing command (exit 127), with a ``vkube:`` message saying the
simulated container does not implement it — never a silent success.

Implemented: ``echo``, ``cat`` (the pod's /etc files, or stdin), ``hostname``, ``env``,
``printenv``, ``pwd``, ``true``, ``false``, ``:``, ``exit`` and, in ``sh -c SCRIPT`` (or a
script read from stdin by a bare ``sh``), ``read`` and the separators ``;``, ``&&``, ``||`` and
newlines, with ``$VAR``/``${VAR}``/``$?`` expansion. Pipes, redirections, background jobs and
sub-shells are refused with exit 126. (``nc``, ``wget``, ``curl``, ``nslookup`` on their own are
``vkube.host.netcmds``.)"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

SHELLS = {"sh", "bash", "ash", "dash", "zsh"}
NOT_FOUND = 127
SYNTAX = 126
_VAR = re.compile(r"\$(\?|\{\w+\}|\w+)")
#: a script's command that reads stdin: ``read``, a bare ``cat`` or ``cat -``
_STDIN_IN_SCRIPT = re.compile(r"(^|[;&|\n]|\bthen|\bdo)\s*(read\b|cat\s*(-\s*)?($|[;&|\n]))")


@dataclass
class Proc:
    """The state of one exec: environment, files, stdin still unread, and what was written."""

    env: dict[str, str]
    files: dict[str, str]
    stdin: str = ""
    cwd: str = "/"
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    status: int = 0


def reads_stdin(argv: list[str]) -> bool:
    """Whether the command reads its stdin (then the kubelet waits for the client's EOF)."""
    if not argv:
        return False
    cmd = argv[0].rsplit("/", 1)[-1]
    if cmd in SHELLS:
        return "-c" not in argv[1:2] or bool(_STDIN_IN_SCRIPT.search(" ".join(argv[2:3])))
    return cmd == "cat" and (len(argv) == 1 or "-" in argv[1:])


def run(argv: list[str], proc: Proc) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of ``argv``."""
    cmd = argv[0].rsplit("/", 1)[-1]
    if cmd in SHELLS:
        rest = argv[1:]
        if rest[:1] == ["-c"]:
            script = rest[1] if len(rest) > 1 else ""
            if not script:
                return "", f"{cmd}: -c: option requires an argument\n", 2
        elif rest:
            return "", (f"vkube: the simulated container does not implement running script files "
                        f"({cmd} {shlex.join(rest)}); use {cmd} -c SCRIPT\n"), SYNTAX
        else:
            script, proc.stdin = proc.stdin, ""
        _script(script, proc, cmd)
    else:
        proc.status = _simple(argv, proc)
    return "".join(proc.out), "".join(proc.err), proc.status


def _script(script: str, proc: Proc, shell: str) -> None:
    lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError as e:
        proc.err.append(f"{shell}: syntax error: {e}\n")
        proc.status = 2
        return
    sep, words = ";", []
    for tok in [*tokens, ";"]:
        if tok not in (";", "&&", "||") and tok.strip(";&|<>()") and not (tok[0] in "<>()&|"):
            words.append(tok)
            continue
        if tok not in (";", "&&", "||"):
            proc.err.append(f"vkube: the simulated container's shell does not implement {tok!r} "
                            f"(pipes, redirections, background jobs and sub-shells)\n")
            proc.status = SYNTAX
            return
        run_it = sep == ";" or (sep == "&&") == (proc.status == 0)
        if words and run_it:
            words = [_expand(w, proc) for w in words]
            if words[0] == "exit":
                if len(words) > 1:
                    proc.status = int(words[1]) % 256 if words[1].lstrip("-").isdigit() else 2
                return
            proc.status = _simple(words, proc)
        sep, words = tok, []


def _expand(word: str, proc: Proc) -> str:
    return expand(word, proc.env, proc.status)


def expand(word: str, env: dict[str, str], status: int = 0) -> str:
    """``$VAR``, ``${VAR}`` and ``$?`` in ``word``, as sh expands them (unset: empty)."""
    def var(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        return str(status) if name == "?" else env.get(name, "")
    return _VAR.sub(var, word)


def _simple(argv: list[str], proc: Proc) -> int:
    """Run one simple command; its exit status."""
    cmd, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if cmd == "echo":
        nl = not (args[:1] == ["-n"])
        proc.out.append(" ".join(args[0 if nl else 1:]) + ("\n" if nl else ""))
    elif cmd in ("true", ":"):
        pass
    elif cmd == "false":
        return 1
    elif cmd == "hostname":
        proc.out.append(proc.env.get("HOSTNAME", "") + "\n")
    elif cmd == "pwd":
        proc.out.append(proc.cwd + "\n")
    elif cmd in ("env", "printenv") and not args:
        proc.out.extend(f"{k}={v}\n" for k, v in proc.env.items())
    elif cmd == "printenv":
        proc.out.extend(f"{proc.env[a]}\n" for a in args if a in proc.env)
        return 0 if all(a in proc.env for a in args) else 1
    elif cmd == "cat":
        return _cat(args, proc)
    elif cmd == "read":
        return _read(args, proc)
    elif cmd == "exit":
        return int(args[0]) % 256 if args and args[0].lstrip("-").isdigit() else proc.status
    else:
        proc.err.append(f"vkube: {cmd}: the simulated container does not implement this command "
                        f"(it has no processes or file system; exec runs echo, cat, hostname, env, "
                        f"printenv, pwd, true, false, read, sh -c, nc, wget, curl, nslookup)\n")
        return NOT_FOUND
    return 0


def _cat(args: list[str], proc: Proc) -> int:
    code = 0
    for path in args or ["-"]:
        if path == "-":
            proc.out.append(proc.stdin)
            proc.stdin = ""
        elif path in proc.files:
            proc.out.append(proc.files[path])
        else:
            proc.err.append(f"cat: {path}: No such file or directory (vkube: a simulated "
                            f"container has only {', '.join(sorted(proc.files))})\n")
            code = 1
    return code


def _read(args: list[str], proc: Proc) -> int:
    names = [a for a in args if not a.startswith("-")] or ["REPLY"]
    if not proc.stdin:
        return 1
    line, nl, proc.stdin = proc.stdin.partition("\n")
    fields = line.split(None, len(names) - 1) if len(names) > 1 else [line.strip()]
    for i, name in enumerate(names):
        proc.env[name] = fields[i] if i < len(fields) else ""
    return 0 if nl else 1
