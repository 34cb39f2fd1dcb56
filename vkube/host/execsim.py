"""What ``kubectl exec`` runs in a simulated container: a simulated pod has no processes and no
file system, so a small, honest set of commands is answered here and everything else fails the
way a shell fails on a missing command (exit 127), with a ``vkube:`` message saying the
simulated container does not implement it — never a silent success.

Implemented: ``echo``, ``cat`` (the pod's /etc files, or stdin), ``hostname``, ``env``,
``printenv``, ``pwd``, ``true``, ``false``, ``:``, ``exit`` and, in ``sh -c SCRIPT`` (or a
script read from stdin by a bare ``sh``), ``read``, the separators ``;``, ``&&``, ``||`` and
newlines and ``if``/``elif``/``else``/``fi``, with ``$VAR``/``${VAR}``/``$?`` expansion;
``exit [N]`` ends the script wherever it stands. Pipes, redirections, background jobs and
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
    #: the script ran ``exit``: the shell ends there (an interactive shell's process too)
    exited: bool = False


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


_SEPS = (";", "&&", "||")
_KEYWORDS = ("then", "elif", "else", "fi")


@dataclass
class If:
    """``if C; then B; [elif C; then B;] [else B;] fi``: (condition, body) lists, else body."""

    branches: list[tuple[list, list]]
    orelse: list


class _Syntax(ValueError):
    pass


class _Unsupported(ValueError):
    def __str__(self) -> str:
        return repr(self.args[0])


def parse_script(script: str) -> list:
    """A ``sh -c`` script as [(separator before, words or If)]; ValueError on a syntax error
    or on what the simulated shell does not implement (pipes, redirections, sub-shells)."""
    lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    tokens = list(lex)
    for tok in tokens:
        if tok not in _SEPS and (not tok.strip(";&|<>()") or tok[0] in "<>()&|"):
            raise _Unsupported(tok)
    return _parse(tokens, 0, ())[0]


def _script(script: str, proc: Proc, shell: str) -> None:
    try:
        items = parse_script(script)
    except _Unsupported as e:
        proc.err.append(f"vkube: the simulated container's shell does not implement {e}"
                        f" (pipes, redirections, background jobs and sub-shells)\n")
        proc.status = SYNTAX
        return
    except ValueError as e:
        proc.err.append(f"{shell}: syntax error: {e}\n")
        proc.status = 2
        return
    _run_list(items, proc)


def _parse(tokens: list[str], i: int, stops: tuple[str, ...]) -> tuple[list, int, str]:
    """A command list up to one of ``stops`` (a keyword in command position): [(separator
    before, words or If)], the index of the stop keyword, and the keyword ("" at the end)."""
    items: list = []
    sep, cur = ";", None
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SEPS:
            if cur is None and tok != ";":
                raise _Syntax(f'unexpected "{tok}"')
            if cur is not None:
                items.append((sep, cur))
                sep = tok
            cur = None
            i += 1
        elif cur is None and tok in stops:
            return items, i, tok
        elif cur is None and tok in _KEYWORDS:
            raise _Syntax(f'unexpected "{tok}"')
        elif cur is None and tok == "if":
            cur, i = _parse_if(tokens, i + 1)
        elif isinstance(cur, If):
            raise _Syntax(f'unexpected word "{tok}" after "fi"')
        else:
            cur = [*(cur or []), tok]
            i += 1
    if cur is not None:
        items.append((sep, cur))
    if stops:
        raise _Syntax(f'end of file unexpected (expecting "{stops[-1]}")')
    return items, i, ""


def _parse_if(tokens: list[str], i: int) -> tuple[If, int]:
    node, stop = If([], []), "elif"
    while stop == "elif":
        cond, i, _ = _parse(tokens, i, ("then",))
        body, i, stop = _parse(tokens, i + 1, ("elif", "else", "fi"))
        node.branches.append((cond, body))
        i += 1
    if stop == "else":
        node.orelse, i, _ = _parse(tokens, i, ("fi",))
        i += 1
    return node, i


def _run_list(items: list, proc: Proc) -> None:
    """Run a parsed list; ``exit`` anywhere in it (or in an ``if`` within) ends the script."""
    for sep, node in items:
        if proc.exited:
            return
        if not (sep == ";" or (sep == "&&") == (proc.status == 0)):
            continue
        if isinstance(node, If):
            for cond, body in node.branches:
                _run_list(cond, proc)
                if proc.exited:
                    return
                if proc.status == 0:
                    _run_list(body, proc)
                    break
            else:
                proc.status = 0
                _run_list(node.orelse, proc)
            continue
        words = [_expand(w, proc) for w in node]
        if words[0] == "exit":
            if len(words) > 1:
                proc.status = int(words[1]) % 256 if words[1].lstrip("-").isdigit() else 2
            proc.exited = True
            return
        proc.status = _simple(words, proc)


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
        proc.exited = True
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
