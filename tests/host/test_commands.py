"""Container command lines → how long they run, their exit code and output."""

from __future__ import annotations

import pytest

from vkube.host.commands import image_name, parse_duration, plan_for


def plan(cmd=None, args=None, image="busybox", env=None):
    c = {"name": "c", "image": image}
    if cmd is not None:
        c["command"] = cmd
    if args is not None:
        c["args"] = args
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return plan_for(c)


@pytest.mark.parametrize("argv,run,code,out", [
    (["sleep", "1"], 1.0, 0, []),
    (["sleep", "2m"], 120.0, 0, []),
    (["sleep", "infinity"], None, 0, []),
    (["true"], 0.0, 0, []),
    (["/bin/false"], 0.0, 1, []),
    (["echo", "hello", "world"], 0.0, 0, ["hello world"]),
    (["sh", "-c", "exit 3"], 0.0, 3, []),
    (["sh", "-c", "sleep 2; exit 7"], 2.0, 7, []),
    (["/bin/sh", "-c", "echo one && echo two; false"], 0.0, 1, ["one", "two"]),
    (["sh", "-c", "false && echo no || echo yes"], 0.0, 0, ["yes"]),
    (["bash", "-ec", "echo $GREETING; sleep 1"], 1.0, 0, ["hi"]),
    (["sh", "-c", "while true; do echo x; sleep 1; done"], None, 0, []),
    (["nginx", "-g", "daemon off;"], None, 0, []),
    (["sh", "-c", "exec sleep 5"], 5.0, 0, []),
    (["sh", "-c", "echo a; if true; then exit 3; fi; echo never"], 0.0, 3, ["a"]),
    (["sh", "-c", "if false; then exit 1\nelif false; then exit 2\nelse exit 4\nfi"], 0.0, 4, []),
    (["sh", "-c", "if true; then sleep 2; exit 5; fi"], 2.0, 5, []),
    (["sh", "-c", "if true; then nginx; fi"], None, 0, []),
    (["sh", "-c", "if true; then echo unterminated"], None, 0, []),
])
def test_plans(argv, run, code, out):
    p = plan(argv, env={"GREETING": "hi"})
    assert (p.run_seconds, p.exit_code, p.output) == (run, code, out)


def test_command_plus_args_and_defaults():
    assert plan(["sh", "-c"], ["exit 4"]).exit_code == 4
    assert plan(None, ["sleep", "3"]).run_seconds == 3.0
    assert plan(image="busybox").run_seconds == 0.0  # shell image, no command: exits at once
    nginx = plan(image="docker.io/library/nginx:1.27")
    assert nginx.run_seconds is None and any("nginx" in line for line in nginx.output)


def test_helpers():
    assert image_name("registry.k8s.io/pause:3.10@sha256:abc") == "pause"
    assert parse_duration("1.5") == 1.5 and parse_duration("1h") == 3600
    with pytest.raises(ValueError):
        parse_duration("soon")
