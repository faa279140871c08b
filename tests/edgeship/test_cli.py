"""CLI papercuts: help text re-flowed, a profile given as --device, the demo model missing,
internal errors on one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeship import cli


def _edgeship(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGESHIP_HOME": str(cwd / ".edgeship"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "edgeship", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_help_keeps_paragraphs_not_source_line_breaks(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = CliRunner().invoke(cli.app, ["deploy", "--help"]).output
    assert "PARALLEL at a time, with one result per board." in text  # two source lines, one text
    assert "Exit status: 0 when every artifact of the profile was built and ran" in text


@pytest.mark.parametrize(("command", "fix"), [
    ("convert", "`edgeship convert --profile rpi4` builds for it"),
    ("deploy", "add a board with `edgeship_profile: rpi4`")])
def test_a_profile_given_as_device_points_to_the_fix(tmp_path: Path, command: str,
                                                      fix: str) -> None:
    res = _edgeship(tmp_path, command, "--device", "rpi4")  # no demo model here: not trained
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(
        "edgeship: error: 'rpi4' is a profile, not a board of ")
    assert fix in res.stderr and "did you mean" not in res.stderr
    assert not (tmp_path / "build").exists()


def test_missing_demo_model_waits_for_the_board_check(tmp_path: Path) -> None:
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(f"all:\n  hosts:\n    far:\n      ansible_host: 127.0.0.1\n"
                             f"      ansible_port: {held.getsockname()[1]}\n"
                             "      edgeship_profile: sim\n")
        started = time.perf_counter()
        res = _edgeship(tmp_path, "deploy", "--device", "far", "--inventory", str(inventory))
    assert res.returncode == 5, res.stderr
    assert "board 'far' unreachable" in res.stderr and "training" not in res.stderr
    assert not (tmp_path / "build").exists() and time.perf_counter() - started < 30


def test_an_internal_error_is_one_line(monkeypatch, capsys) -> None:
    def broken(args: list[str]) -> None:
        raise ValueError("first line\n  second line [not markup]")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.setattr(sys, "argv", ["edgeship", "deploy"])
    monkeypatch.delenv("EDGESHIP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main()
    err = capsys.readouterr().err
    assert info.value.code == 70
    assert err.splitlines() == [("edgeship: internal error: ValueError: first line second line "
                                 "[not markup] (set EDGESHIP_DEBUG=1 for the traceback and "
                                 "report it)")]
