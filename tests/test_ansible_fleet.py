"""The Ansible engine against real boards: real ansible-core, three simulated boards each with
its own sshd in its own network namespace, one board down in one case, max_fail_percentage
stopping a rolling deploy, and the reports of both engines agreeing in form.

Root and ansible-core only: skipped with the reason otherwise. Traffic goes only to the
10.213.x.0/24 segment these tests create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.paths import Paths
from devices import load_inventory
from edgeship.ansible_engine import AnsibleOptions, ansible_unavailable_reason, deploy_fleet_ansible
from runtimes.sim import netns
from runtimes.sim.netns_board import NetnsBoard, write_group_inventory

_REASON = netns.unavailable_reason() or ansible_unavailable_reason()
pytestmark = [pytest.mark.netns, pytest.mark.ssh,
              pytest.mark.skipif(_REASON is not None, reason=f"needs root and ansible: {_REASON}")]

_PROFILE = """description: onnx-only profile for the Ansible engine tests
arch: x86_64
python: "3.11"
artifacts:
  - {format: onnx, precision: fp32}
runtime: {threads: 1, onnx_providers: [CPUExecutionProvider]}
profiling: {warmup: 2, runs: 10}
budgets: {p99_ms: 500}
"""


def _onnx(path: Path, seed: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["output"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8])],
                              [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Paths, list[NetnsBoard], Path]]:
    """Three namespace boards sharing one runtime venv (provisioned once), and their inventory."""
    from runtimes import SSHTransport, ensure_runtime

    base = tmp_path_factory.mktemp("ansible-fleet")
    paths = Paths(home=base / ".edgeship")
    subnet = netns.free_subnet()
    boards = [NetnsBoard(paths, f"ab{i}", subnet.network_address + 10 + i) for i in range(3)]
    try:
        for sim in boards:
            sim.up()
        first = boards[0].board()
        with SSHTransport(first, paths.known_hosts, look_for_keys=False, allow_agent=False,
                          system_host_keys=False, ssh_config=None) as tr:
            ensure_runtime(tr, first)
        for sim in boards[1:]:
            (sim.root / "venv").symlink_to(boards[0].root / "venv")
        (base / "tiny.yaml").write_text(_PROFILE)
        write_group_inventory(boards, "afleet", base / "tiny.yaml", base / "inventory.yaml",
                              python="/usr/bin/python3")
        yield paths, boards, base
    finally:
        netns.segment_down(subnet)


def _report(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_both_engines_give_reports_of_the_same_form(fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeship.fleet import deploy_fleet

    paths, boards, base = fleet
    monkeypatch.setenv("EDGESHIP_REPORTS", str(base / "reports"))
    inv = load_inventory(base / "inventory.yaml")
    old = deploy_fleet("afleet", str(_onnx(base / "a.onnx", 1)), None, paths=paths, inventory=inv,
                       parallel=3)
    new = deploy_fleet_ansible("afleet", str(_onnx(base / "b.onnx", 2)), None, paths=paths,
                               inventory=inv, options=AnsibleOptions(forks=3))
    assert old.all_ok and new.all_ok, [e["reason"] for e in new.report["fleet"]]
    assert new.report["engine"] == "ansible" and new.report["verdict"] == "pass"
    assert set(old.report) <= set(new.report)
    for a, b in zip(old.report["fleet"], new.report["fleet"]):
        assert a["board"] == b["board"] and set(a) == set(b)
        assert [set(x) for x in a["artifacts"]] == [set(x) for x in b["artifacts"]]
        ra, rb = _report(a["report"]), _report(b["report"])
        assert set(ra) == set(rb) and set(ra["ship"]) == set(rb["ship"])
        assert [set(x) for x in ra["artifacts"]] == [set(x) for x in rb["artifacts"]]
        assert rb["ship"]["health"]["ok"] and rb["device_facts"]["hostname"]
    for sim, a, b in zip(boards, old.report["fleet"], new.report["fleet"]):
        assert os.readlink(sim.root / "current") == f"releases/{b['bundle']}"
        assert os.readlink(sim.root / "previous") == f"releases/{a['bundle']}"  # kept
        assert {p.name for p in (sim.root / "releases").iterdir()} >= {a["bundle"], b["bundle"]}


def test_cli_engine_ansible_with_one_board_down(fleet, tmp_path: Path) -> None:
    paths, boards, base = fleet
    boards[1].down()  # its sshd stopped; the namespace stays, so connections are refused
    try:
        env = {**os.environ, "EDGESHIP_HOME": str(paths.home),
               "EDGESHIP_REPORTS": str(tmp_path / "reports"), "COLUMNS": "200"}
        proc = subprocess.run(
            [sys.executable, "-m", "edgeship", "deploy", "--device", "afleet", "--model",
             str(_onnx(tmp_path / "c.onnx", 3)), "--inventory", str(base / "inventory.yaml"),
             "--json", "--engine", "ansible", "--forks", "3"],
            capture_output=True, text=True, env=env, timeout=300)
    finally:
        boards[1].up()
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    by_board = {e["board"]: e for e in doc["fleet"]}
    assert [e["board"] for e in doc["fleet"]] == ["ab0", "ab1", "ab2"]
    assert by_board["ab0"]["ok"] and by_board["ab2"]["ok"], [e["reason"] for e in doc["fleet"]]
    assert by_board["ab2"]["verdict"] == "pass" and by_board["ab2"]["artifacts"][0]["p99_ms"]
    down = by_board["ab1"]
    assert not down["ok"] and down["verdict"] == "failed" and "\n" not in down["reason"]
    assert "ab1" in down["reason"] and "connection refused" in down["reason"].lower()
    assert doc["verdict"] == "failed" and doc["ok"] == 2 and doc["engine"] == "ansible"
    assert "1 of 3 boards of 'afleet' failed (ab1)" in " ".join(proc.stderr.split())
    assert "TASK [Ship the bundle" in proc.stderr  # Ansible's own progress, on stderr


def test_max_fail_percentage_stops_a_rolling_deploy(fleet, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    paths, boards, base = fleet
    monkeypatch.setenv("EDGESHIP_REPORTS", str(tmp_path / "reports"))
    boards[0].down()  # the first batch (serial 1) fails: with 0 % allowed, the play stops
    try:
        out = deploy_fleet_ansible(
            "afleet", str(_onnx(tmp_path / "d.onnx", 4)), None, paths=paths,
            inventory=load_inventory(base / "inventory.yaml"),
            options=AnsibleOptions(forks=3, serial=1, max_fail_percentage=0))
    finally:
        boards[0].up()
    first, *rest = out.report["fleet"]
    assert not first["ok"] and "connection refused" in first["reason"].lower()
    assert [e["ok"] for e in rest] == [False, False]
    assert all("max_fail_percentage" in e["reason"] for e in rest)
    assert (out.report["serial"], out.report["max_fail_percentage"]) == (1, 0)


@pytest.mark.slow
def test_a_fresh_board_gets_its_runtime_through_ansible(fleet, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No venv on the board: edgeship_runtime uploads the wheelhouse and installs it."""
    paths, boards, base = fleet
    monkeypatch.setenv("EDGESHIP_REPORTS", str(tmp_path / "reports"))
    sim = NetnsBoard(paths, "fresh", boards[0].netns.address + 20)
    b = sim.up()
    try:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(
            f"all:\n  hosts:\n    fresh:\n      ansible_host: {b.host}\n      ansible_user: {b.user}\n"
            f"      ansible_ssh_private_key_file: {b.key_file}\n      edgeship_root: {b.root}\n"
            f"      edgeship_python: /usr/bin/python3\n      edgeship_profile: {base / 'tiny.yaml'}\n")
        out = deploy_fleet_ansible("fresh", str(_onnx(tmp_path / "e.onnx", 5)), None, paths=paths,
                                   inventory=load_inventory(inventory))
    finally:
        sim.destroy()
    assert out.all_ok, out.report["fleet"][0]["reason"]
    venv = sim.root / "venv"
    assert venv.is_dir() and not venv.is_symlink() and (sim.root / "wheelhouse").is_dir()
