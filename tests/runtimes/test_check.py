"""``edgeship check`` / the deploy pre-flight against real sshd boards: a down board fails in well
under a second, an unknown or changed host key is named with its fix, a board without the
runtime says how to install it, and a provisioned board passes every line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rt_kit import refused_port

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from profiles import load_profile
from runtimes import SimBoard
from runtimes.check import Check, check_board, failed, preflight

pytestmark = pytest.mark.ssh

_QUIET = {"look_for_keys": False, "allow_agent": False, "system_host_keys": False}
_SIM = load_profile("sim")


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_down_board_fails_fast_at_tcp_and_skips_the_rest(sim: SimBoard,
                                                           sim_paths: Paths) -> None:
    with refused_port() as port:
        down = sim.board().model_copy(update={"port": port})
        started = time.perf_counter()
        checks = check_board(down, sim_paths.known_hosts, _SIM, **_QUIET)
        seconds = time.perf_counter() - started
        with pytest.raises(ShipError) as info:
            preflight(down, sim_paths.known_hosts, _SIM, **_QUIET)
    by = _by_name(checks)
    assert seconds < 1.5, seconds  # refused at once; slack for a busy CI host
    assert by["dns"].ok and by["tcp"].ok is False and "connection refused" in by["tcp"].detail
    assert "edgeship board up sim" in by["tcp"].fix
    assert [c.name for c in failed(checks)] == ["tcp"]
    assert all(c.ok is None and "tcp failed" in c.detail for c in checks[2:])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"board 'sim' unreachable: 127.0.0.1:{port}: "
                                              "connection refused; start it")


def test_a_name_that_does_not_resolve_is_the_first_line(sim_paths: Paths) -> None:
    board = Board(name="ghost", host="ghost.invalid", profile="sim")
    started = time.perf_counter()
    checks = check_board(board, sim_paths.known_hosts, _SIM, timeout=2.0, **_QUIET)
    assert time.perf_counter() - started < 4.0  # the 2 s bound, plus slack for a busy host
    dns = _by_name(checks)["dns"]
    assert dns.ok is False and "ghost.invalid" in dns.detail and "ansible_host" in dns.fix
    assert [c.name for c in failed(checks)] == ["dns"]


def test_an_unknown_host_key_is_named_and_nothing_logs_in(sim: SimBoard,
                                                          tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    checks = check_board(sim.board(), empty, _SIM, **_QUIET)
    key = _by_name(checks)["host key"]
    assert key.ok is False and "SHA256:" in key.detail and "not pinned" in key.detail
    assert "edgeship boards trust sim" in key.fix
    assert _by_name(checks)["ssh auth"].ok is None
    with pytest.raises(ShipError, match=r"^board 'sim' host key: .* not pinned in "):
        preflight(sim.board(), empty, _SIM, **_QUIET)


def test_a_changed_host_key_is_refused(sim: SimBoard, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sim.board().port} {kind} {blob}\n")
    key = _by_name(check_board(sim.board(), known, _SIM, **_QUIET))["host key"]
    assert key.ok is False and "pins another key" in key.detail and "ssh-keygen -R" in key.fix


def test_a_board_without_the_runtime_says_how_to_install_it(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path / "home")
    bare = SimBoard(paths, "bare")
    board = bare.up()
    try:
        checks = _by_name(check_board(board, paths.known_hosts, _SIM, **_QUIET))
    finally:
        bare.down()
    assert all(checks[n].ok for n in ("dns", "tcp", "host key", "ssh auth", "python", "arch",
                                       "glibc", "free space"))
    runtime = checks["runtime"]
    assert runtime.ok is False and "no onnxruntime" in runtime.detail
    assert "no runtime venv" in runtime.detail
    assert "edgeship provision --device bare" in runtime.fix
    assert checks["accelerator"].ok is None  # said once, under runtime


def test_a_provisioned_board_passes_and_a_jetson_profile_does_not(provisioned: Board,
                                                                 sim_paths: Paths) -> None:
    checks = check_board(provisioned, sim_paths.known_hosts, _SIM, **_QUIET)
    assert failed(checks) == [], [c.line() for c in checks]
    by = _by_name(checks)
    assert "onnxruntime 1.31.1" in by["runtime"].detail and "ai-edge-litert" in by["runtime"].detail
    assert "CPUExecutionProvider" in by["accelerator"].detail
    jetson = _by_name(check_board(provisioned, sim_paths.known_hosts,
                                  load_profile("jetson-orin-nano"), **_QUIET))
    assert jetson["arch"].ok is False and "the profile is for aarch64" in jetson["arch"].detail
    accel = jetson["accelerator"]
    assert accel.ok is False and "missing TensorrtExecutionProvider, CUDAExecutionProvider" in \
        accel.detail and "onnxruntime-gpu" in accel.fix


def test_cli_check_json_and_exit_status(sim_paths: Paths, tmp_path: Path) -> None:
    with refused_port() as port:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(f"all:\n  hosts:\n    far:\n      ansible_host: 127.0.0.1\n"
                             f"      ansible_port: {port}\n      edgeship_profile: sim\n")
        env = {**os.environ, "EDGESHIP_HOME": str(tmp_path / "home")}
        proc = subprocess.run([sys.executable, "-m", "edgeship", "check", "--device", "far",
                               "--inventory", str(inventory), "--json"],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
        text = subprocess.run([sys.executable, "-m", "edgeship", "check", "--device", "far",
                               "--inventory", str(inventory)],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 5 and text.returncode == 5, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["board"] == "far" and doc["ok"] is False and doc["seconds"] < 2.0
    assert [c["ok"] for c in doc["checks"]][:2] == [True, False]
    assert "✗ tcp: 127.0.0.1" in text.stdout and "1 failed" in text.stdout


def test_deploy_checks_the_board_before_converting(tmp_path: Path) -> None:
    """The model does not even exist: an unreachable board is what deploy reports, at once."""
    from devices import load_inventory
    from edgeship.deploy import deploy

    with refused_port() as port:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(f"all:\n  hosts:\n    far:\n      ansible_host: 127.0.0.1\n"
                             f"      ansible_port: {port}\n      edgeship_profile: sim\n")
        started = time.perf_counter()
        with pytest.raises(ShipError, match=r"^board 'far' unreachable: .*connection refused"):
            deploy("far", str(tmp_path / "missing.onnx"), None,
                   paths=Paths(home=tmp_path / "home"), inventory=load_inventory(inventory))
    assert time.perf_counter() - started < 2.0  # not the conversion (20-34 s)


def test_a_board_behind_a_jump_host_is_checked_through_it(sim: SimBoard, provisioned: Board,
                                                          tmp_path: Path) -> None:
    """ProxyJump: dns/tcp reach the jump host, the host keys are checked at login."""
    board, key = sim.board(), sim.client_key
    config = tmp_path / "config"
    config.write_text(
        f"Host behind\n  HostName 127.0.0.1\n  Port {board.port}\n  User {board.user}\n"
        f"  IdentityFile {key}\n  ProxyJump jumpbox\n"
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {board.port}\n  User {board.user}\n"
        f"  IdentityFile {key}\n")
    real = provisioned.model_copy(update={"simulated": False, "host": "behind", "port": 22,
                                          "user": None, "key_file": None})
    by = _by_name(check_board(real, Path(sim.paths.known_hosts), _SIM, ssh_config=config,
                              **_QUIET))
    assert "(first jump host)" in by["tcp"].detail
    assert by["host key"].ok is None and "ProxyJump" in by["host key"].detail
    assert by["ssh auth"].ok and by["runtime"].ok, [c.line() for c in by.values()]
