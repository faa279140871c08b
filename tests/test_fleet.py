"""The fleet engine without boards: bounded parallelism, one result per board, failure isolation,
the fleet document and table, and the CLI routing a group to the fleet path."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import ConfigError, ShipError
from devices import Board
from edgeship.fleet import BoardResult, run_fleet
from profiler.report import build_fleet_report, render_fleet_table


def _boards(n: int) -> list[Board]:
    return [Board(name=f"b{i}", host=f"10.213.9.{10 + i}", profile="sim") for i in range(n)]


def test_run_fleet_bounds_the_connections_and_keeps_board_order() -> None:
    lock, active, peak = threading.Lock(), [0], [0]
    gate = threading.Barrier(2, timeout=10)

    def task(board: Board) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            gate.wait()  # two run together: the bound is reached, never passed
        except threading.BrokenBarrierError:
            pass
        with lock:
            active[0] -= 1
        return board.host

    results = run_fleet(_boards(6), task, parallel=2)
    assert [r.board for r in results] == [f"b{i}" for i in range(6)]
    assert all(r.ok and r.value == f"10.213.9.{10 + i}" for i, r in enumerate(results))
    assert peak[0] == 2


def test_one_failing_board_does_not_stop_the_others() -> None:
    def task(board: Board) -> int:
        if board.name == "b1":
            raise ShipError("board 'b1' (10.213.9.11:22) unreachable: connection refused;\n is it up?")
        if board.name == "b2":
            raise KeyError("boom")
        return 1

    results = run_fleet(_boards(4), task, parallel=4)
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].reason == "board 'b1' (10.213.9.11:22) unreachable: connection refused; is it up?"
    assert results[2].reason == "internal error: KeyError: 'boom'"


@pytest.mark.parametrize("parallel", [0, -1])
def test_parallel_below_one_is_refused(parallel: int) -> None:
    with pytest.raises(ConfigError, match="--parallel must be at least 1"):
        run_fleet(_boards(1), lambda b: b, parallel=parallel)


def _ok(verdict: str, tmp_path: Path) -> SimpleNamespace:
    report = {"verdict": verdict, "bundle": {"id": "abc"},
              "ship": {"bytes_sent": 2_000_000, "reused": False},
              "artifacts": [{"key": "onnx-fp32", "verdict": verdict, "latency_ms": {"p50": 1.0, "p99": 2.5},
                             "peak_rss_mb": 50.0}]}
    return SimpleNamespace(report=report, report_path=tmp_path / "r.json")


def test_fleet_document_has_one_entry_per_board_and_a_verdict(tmp_path: Path) -> None:
    boards = _boards(3)
    results = [BoardResult("b0", True, _ok("pass", tmp_path), None, 1.0),
               BoardResult("b1", False, None, "board 'b1' unreachable: connection refused", 0.1),
               BoardResult("b2", True, _ok("pass", tmp_path), None, 1.2)]
    doc = build_fleet_report(device="g", boards=boards, results=results, parallel=4, seconds=1.3)
    assert [e["board"] for e in doc["fleet"]] == ["b0", "b1", "b2"]
    assert doc["verdict"] == "failed" and doc["ok"] == 2 and doc["boards"] == 3
    assert doc["fleet"][1] == {"board": "b1", "host": "10.213.9.11", "port": 22, "profile": "sim",
                               "ok": False, "reason": "board 'b1' unreachable: connection refused",
                               "seconds": 0.1, "verdict": "failed"}
    assert doc["fleet"][0]["artifacts"][0]["p99_ms"] == 2.5
    passing = build_fleet_report(device="g", boards=boards[:1], results=results[:1], parallel=1,
                                 seconds=1.0)
    assert passing["verdict"] == "pass"
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_fleet_table(doc))
    text = console.export_text()
    assert "failed: board 'b1' unreachable: connection refused" in text and "2.00 MB" in text


def test_cli_sends_a_group_to_the_fleet_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from edgeship.cli import _fleet, app

    seen = {}
    monkeypatch.setattr(_fleet, "deploy_group", lambda device, *a, **kw: seen.update(device=device, **kw))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  children:\n    grp:\n      hosts:\n"
                         "        a: {edgeship_profile: sim}\n        b: {edgeship_profile: sim}\n")
    result = CliRunner().invoke(app, ["deploy", "--device", "grp", "--model", "m.onnx",
                                      "--inventory", str(inventory), "--parallel", "3"])
    assert result.exit_code == 0, result.output
    assert seen["device"] == "grp" and seen["parallel"] == 3


@pytest.mark.ssh
def test_preflight_fails_unreachable_boards_before_converting(board: Board, sim_paths) -> None:
    """A fleet's boards are checked first: the one nobody listens for fails with the check's
    one-line reason at once; the real board passes."""
    import socket

    from edgeship.fleet import preflight_fleet

    with socket.socket() as s:  # a port nobody listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        dead = Board(name="dead", host="127.0.0.1", port=s.getsockname()[1], user="pi",
                     profile="sim")
        said: list[str] = []
        failed = preflight_fleet([board, dead], sim_paths, parallel=2, progress=said.append)
    assert list(failed) == ["dead"]
    assert failed["dead"].startswith("pre-flight: ") and "\n" not in failed["dead"]
    assert "refused" in failed["dead"] or "unreachable" in failed["dead"]
    assert any(line.startswith("[dead] pre-flight: ") for line in said)
