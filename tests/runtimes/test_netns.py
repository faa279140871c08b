"""Boards in network namespaces: own sshd per namespace, fixed MACs, a lossy rate-limited link,
a fleet with one board down (through the real CLI), and a teardown that leaves nothing behind.

Root only: skipped with the reason otherwise (the loopback board covers the rest of the suite).
Traffic goes only to the 10.213.x.0/24 segments these tests create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from rt_kit import make_bundle, open_transport, sha256_file

from core.paths import Paths
from devices import Board
from runtimes import ship_bundle
from runtimes.sim import netns
from runtimes.sim.netns_board import NetnsBoard, write_group_inventory

_REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.netns, pytest.mark.ssh,
              pytest.mark.skipif(_REASON is not None, reason=f"netns: {_REASON}")]

_PROFILE = """description: onnx-only profile for fleet tests
arch: x86_64
python: "3.11"
artifacts:
  - {format: onnx, precision: fp32}
runtime: {threads: 1, onnx_providers: [CPUExecutionProvider]}
profiling: {warmup: 2, runs: 10}
budgets: {p99_ms: 500}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory,
          provisioned: Board) -> Iterator[tuple[Paths, IPv4Network, list[NetnsBoard]]]:
    """Three boards, each its own sshd in its own namespace, sharing the session's runtime venv."""
    paths = Paths(home=tmp_path_factory.mktemp("netns-home") / ".edgeship")
    subnet = netns.free_subnet()
    boards = [NetnsBoard(paths, f"nb{i}", subnet.network_address + 10 + i) for i in range(3)]
    try:
        for sim in boards:
            sim.up()
            (sim.root / "venv").symlink_to(Path(provisioned.python).parent.parent)
        yield paths, subnet, boards
    finally:
        netns.segment_down(subnet)


def test_each_board_is_its_own_sshd_in_its_own_namespace(fleet) -> None:
    paths, subnet, boards = fleet
    seen = set()
    for sim in boards:
        board = sim.board()
        assert board.host == str(sim.netns.address) and board.port == 22
        with open_transport(board, paths) as tr:
            out = tr.run(["ip", "-o", "link", "show", "eth0"]).stdout
        assert sim.netns.mac in out
        seen.add(sim.status().pid)
    assert len(seen) == 3
    assert sorted(netns.leftovers(subnet)) == sorted(
        [b.netns.name for b in boards] + [b.netns.veth for b in boards]
        + [netns.bridge_name(subnet), f"route unreachable {subnet}"])


def test_namespace_has_no_way_out_of_its_segment(fleet) -> None:
    _, subnet, boards = fleet
    routes = boards[0].netns.exec(["ip", "-4", "route", "show"]).stdout
    assert "default" not in routes and str(subnet) in routes


def test_deploy_over_a_lossy_rate_limited_link_completes(
    fleet, models: Path, tmp_path: Path
) -> None:
    paths, _, boards = fleet
    sim = boards[0]
    bundle = make_bundle(models, tmp_path, "lossy000000000001",
                         extra={"padding.bin": os.urandom(600_000)})
    sim.netns.shape(rate_mbit=4, loss_pct=3)
    try:
        rules = sim.netns.exec(["nft", "list", "ruleset"]).stdout
        assert "numgen random mod 100 < 3" in rules
        assert "tbf" in sim.netns.exec(["tc", "qdisc", "show", "dev", "eth0"]).stdout
        board = sim.board()
        with open_transport(board, paths, connect_timeout=30) as tr:
            result = ship_bundle(tr, board, bundle)
    finally:
        sim.netns.unshape()
    assert not result.reused and result.bytes_sent > 600_000
    current = sim.root / "current"
    assert os.readlink(current) == "releases/lossy000000000001"
    assert sha256_file(current / "padding.bin") == sha256_file(bundle / "padding.bin")
    assert "es_link" not in sim.netns.exec(["nft", "list", "ruleset"]).stdout


def test_status_does_not_depend_on_a_lossy_link(fleet) -> None:
    """Status is read from /proc, not by connecting: a link dropping 99 % of packets changes
    nothing (a 0.2 s connect probe used to call such a board down, and `up` restarted it)."""
    _, _, boards = fleet
    sim = boards[2]
    before = sim.status()
    sim.netns.shape(loss_pct=99)
    try:
        states = [sim.status() for _ in range(5)]
        again = sim.up()
    finally:
        sim.netns.unshape()
    assert before.running and all(s.running and s.pid == before.pid for s in states)
    assert again.port == 22 and sim.status().pid == before.pid  # not restarted


@pytest.fixture
def group_inventory(fleet, tmp_path: Path) -> Callable[[], Path]:
    paths, _, boards = fleet
    profile = tmp_path / "tiny.yaml"
    profile.write_text(_PROFILE)
    inventory = write_group_inventory(boards, "nsfleet", profile, tmp_path / "inventory.yaml")
    return lambda: inventory


def test_group_deploy_with_one_board_down(fleet, group_inventory, models: Path,
                                          tmp_path: Path) -> None:
    paths, _, boards = fleet
    boards[1].down()  # its sshd stopped; the namespace stays, so connections are refused
    try:
        env = {**os.environ, "EDGESHIP_HOME": str(paths.home),
               "EDGESHIP_REPORTS": str(tmp_path / "reports"), "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "edgeship", "deploy", "--device", "nsfleet", "--model",
             str(models / "model.fp32.onnx"), "--inventory", str(group_inventory()), "--json",
             "--parallel", "2"], capture_output=True, text=True, env=env, timeout=240)
    finally:
        boards[1].up()
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    by_board = {e["board"]: e for e in doc["fleet"]}
    assert [e["board"] for e in doc["fleet"]] == ["nb0", "nb1", "nb2"]
    assert by_board["nb0"]["ok"] and by_board["nb2"]["ok"], [e["reason"] for e in doc["fleet"]]
    assert by_board["nb0"]["verdict"] == "pass" and by_board["nb0"]["artifacts"][0]["p99_ms"]
    down = by_board["nb1"]
    assert not down["ok"] and down["verdict"] == "failed"
    assert "nb1" in down["reason"] and "connection refused" in down["reason"]
    assert "\n" not in down["reason"]
    assert doc["verdict"] == "failed" and doc["ok"] == 2 and doc["parallel"] == 2
    assert "1 of 3 boards of 'nsfleet' failed (nb1)" in " ".join(proc.stderr.split())
    assert Path(by_board["nb2"]["report"]).is_file()
    spread = doc["spread"]["onnx-fp32"]  # the boards that ran, side by side
    assert set(spread["boards"]) == {"nb0", "nb2"} and spread["spread_pct"] >= 0
    page = next((tmp_path / "reports" / "nsfleet").glob("*/fleet.html")).read_text()
    assert "nb1" in page and "connection refused" in page and 'data-fleet="true"' in page


def test_simulated_group_up_and_down_and_teardown_leaves_nothing(tmp_path: Path) -> None:
    from edgeship.fleet import boards_down, boards_up

    paths = Paths(home=tmp_path / ".edgeship")
    subnet = netns.free_subnet()
    hosts = "".join(f"        s{i}: {{ansible_host: {subnet.network_address + 20 + i}}}\n"
                    for i in range(2))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  children:\n    sims:\n      vars: {edgeship_simulated: true, "
                         f"edgeship_profile: sim}}\n      hosts:\n{hosts}")
    from devices import load_inventory

    inv = load_inventory(inventory)
    try:
        up = boards_up("sims", paths=paths, inventory=inv)
        assert [b.host for b in up] == [str(subnet.network_address + 20 + i) for i in range(2)]
        NetnsBoard(paths, "s0", up[0].host).netns.shape(rate_mbit=2, loss_pct=5)
        pids = [p for b in up for p in NetnsBoard(paths, b.name, b.host).netns.pids()]
        assert len(pids) >= 2  # the two sshd daemons (and any connection child)
        assert boards_down("sims", paths=paths, inventory=inv) == ["s0", "s1"]
        assert netns.leftovers(subnet) == []  # the last board down removed the segment too
    finally:
        netns.cleanup(subnet)
    assert netns.leftovers(subnet) == []
    assert not any(_running(p) for p in pids)
    assert netns.cleanup(subnet) == []  # idempotent


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False
