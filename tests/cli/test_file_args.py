"""Every file a command is given (``-f``, ``--host-kubeconfig``, ``KUBECONFIG``, a snapshot
file): a directory, a file that is not UTF-8 or is missing is one line naming the path and
what to do next — never a traceback, nothing started or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import make_user


def test_bad_file_arguments_are_one_line_with_the_next_step(tmp_path: Path) -> None:
    u = make_user(tmp_path / "u")
    binary = tmp_path / "values.yaml"
    binary.write_bytes(b"\xff\xfe\x00sync: {}\n")
    folder = tmp_path / "dir"
    folder.mkdir()
    store = tmp_path / "store.db"
    cases = [
        (["create", "zz", "-f", str(folder)], f"values file {folder} is a directory, not a "
         "file — check the path given to -f"),
        (["create", "zz", "-f", str(binary)], "is not UTF-8 text (byte 0 is 0xff)"),
        (["create", "zz", "--upgrade", "-f", str(folder)], "is a directory, not a file"),
        (["create", "zz", "--upgrade", "-f", str(binary)], "is not UTF-8 text"),
        (["create", "zz", "--tenancy", "namespace", "-f", str(folder)], "is a directory"),
        (["render", "zz", "-f", str(binary)], "is not UTF-8 text"),
        (["create", "zz", "--host-kubeconfig", str(folder)],
         f"host kubeconfig {folder} is a directory, not a file — check the path given to "
         "--host-kubeconfig"),
        (["create", "zz", "--host-kubeconfig", str(binary)], "is not UTF-8 text"),
        (["snapshot", "restore", "zz", str(folder), "--store", str(store)],
         f"snapshot file {folder} is a directory, not a file — restore a file that `vkube "
         "snapshot save SOURCE FILE` wrote: `vkube snapshot restore zz FILE`"),
        (["snapshot", "restore", "zz", str(binary), "--store", str(store)],
         "is not a vkube snapshot"),
        (["snapshot", "save", "zz", str(folder), "--store", str(store)],
         f"name a file in it, e.g. `vkube snapshot save zz {folder}/zz.jsonl`"),
    ]
    for cmd, message in cases:
        out = u.vkube(*cmd, check=False)
        assert out.returncode != 0 and message in out.stderr, (cmd, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, \
            (cmd, out.stderr)
    assert not (u.home / "clusters" / "zz").exists() and not (u.home / "host").exists()


@pytest.mark.parametrize("bad", ["dir", "binary"])
def test_a_kubeconfig_that_is_no_file_is_named(tmp_path: Path, bad: str) -> None:
    u = make_user(tmp_path / "u")
    if bad == "dir":
        u.kubeconfig.unlink()
        u.kubeconfig.mkdir()
    else:
        u.kubeconfig.write_bytes(b"\xff\xfe")
    out = u.vkube("list", check=False)
    assert out.returncode == 1 and out.stderr.startswith(f"error: kubeconfig {u.kubeconfig} "), \
        out.stderr
    assert "fix KUBECONFIG or move the file" in out.stderr and "Traceback" not in out.stderr
