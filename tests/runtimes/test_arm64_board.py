"""The Raspberry Pi path on a real aarch64 userland: the emulated board ``sim-arm64``.

Debian bookworm arm64 (Python 3.11, like Raspberry Pi OS Bookworm) under qemu-user, its own
OpenSSH sshd, provisioned offline from a host-side aarch64 wheelhouse; the demo CNN's
``rpi4``-profile artifacts shipped, profiled, and their outputs compared with the host's.
Asserts function, not speed. First run builds the rootfs (~7 min); later runs reuse it.

``EDGESHIP_ARM64_REPORT=path.json`` saves the agent's report of the emulated Pi there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from arm64_kit import (
    OUTPUTS_SCRIPT,
    SAMPLES,
    finish_bundle_build,
    run_outputs_on_host,
    start_bundle_build,
    test_profile,
)

from core.paths import Paths
from devices import Board
from profiler import measure_release
from runtimes import SSHTransport, build_wheelhouse, probe_board, provision, ship_bundle
from runtimes.provision import BoardFacts
from runtimes.sim.arm64board import Arm64Board


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the arm64 board needs root (binfmt_misc, mounts, chroot)"
    missing = [t for t in ("unshare", "chroot", "mount") if shutil.which(t) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


pytestmark = [pytest.mark.slow, pytest.mark.ssh,
              pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))]


@pytest.fixture(scope="module")
def bundle_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    out = tmp_path_factory.mktemp("arm64-bundle")
    proc = start_bundle_build(out)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory, bundle_job: object) -> Iterator[Arm64Board]:
    """The emulated Pi in a network namespace of a free 10.213.x.0/24 (on the loopback when
    namespaces are unavailable); started after the bundle build, so the two overlap."""
    from runtimes.sim.netns import free_subnet, segment_down, unavailable_reason

    subnet = free_subnet() if unavailable_reason() is None else None
    address = str(subnet.network_address + 10) if subnet else None
    paths = Paths(home=tmp_path_factory.mktemp("arm64-home"))
    board = Arm64Board(paths, "sim-arm64", profile="rpi4", address=address)
    try:
        board.up()
        yield board
    finally:
        board.destroy()
        if subnet is not None:
            segment_down(subnet)


@pytest.fixture(scope="module")
def ssh(pi: Arm64Board) -> Iterator[SSHTransport]:
    with SSHTransport(pi.board(), pi.paths.known_hosts, connect_timeout=60, look_for_keys=False,
                      allow_agent=False, system_host_keys=False) as tr:
        yield tr


@pytest.fixture(scope="module")
def facts(ssh: SSHTransport) -> BoardFacts:
    return probe_board(ssh)


@pytest.fixture(scope="module")
def runtime_board(pi: Arm64Board, ssh: SSHTransport, facts: BoardFacts) -> Board:
    """The board with its runtime venv, provisioned offline from the aarch64 wheelhouse."""
    python = provision(ssh, pi.board(), facts, build_wheelhouse(facts))
    return pi.board().model_copy(update={"python": python})


@pytest.fixture(scope="module")
def release(ssh: SSHTransport, runtime_board: Board,
            bundle_job: tuple[subprocess.Popen[str], Path]) -> tuple[Path, str]:
    """The demo CNN's rpi4 bundle shipped to the Pi: ``(local bundle dir, release id)``."""
    bundle = finish_bundle_build(*bundle_job)
    return bundle, ship_bundle(ssh, runtime_board, bundle).release_id


def test_arm64_board_is_a_bookworm_aarch64_userland(facts: BoardFacts, ssh: SSHTransport) -> None:
    assert facts.machine == "aarch64"
    assert facts.python_xy == "3.11"
    assert facts.glibc == "2.36"
    assert "bookworm" in facts.os
    assert ssh.run(["uname", "-m"]).stdout.strip() == "aarch64"
    # The host's /sys is not bound in (onnxruntime segfaults under qemu with it).
    assert ssh.run(["ls", "/sys"], check=False).stdout.strip() == ""


def test_arm64_wheelhouse_is_aarch64_and_provisioned_offline(
        facts: BoardFacts, runtime_board: Board, ssh: SSHTransport) -> None:
    wheels = (build_wheelhouse(facts) / "wheels.txt").read_text().split()
    runtime = [w for w in wheels if w.startswith(("onnxruntime-", "ai_edge_litert-", "numpy-"))]
    assert len(runtime) == 3 and all("aarch64" in w for w in runtime), wheels
    probe = "import onnxruntime, ai_edge_litert, numpy, platform; print(platform.machine())"
    assert ssh.run([runtime_board.python, "-c", probe], timeout=600).stdout.strip() == "aarch64"


def test_arm64_profile_reports_an_aarch64_device(
        ssh: SSHTransport, runtime_board: Board, release: tuple[Path, str]) -> None:
    doc = measure_release(ssh, runtime_board, test_profile(), release[1])
    if os.environ.get("EDGESHIP_ARM64_REPORT"):
        Path(os.environ["EDGESHIP_ARM64_REPORT"]).write_text(json.dumps(doc, indent=2) + "\n")
    assert doc["device"]["machine"] == "aarch64"
    emulation = doc["device"].get("emulation") or {}
    assert emulation.get("emulated") is True, doc["device"]  # memory under qemu-user is inflated
    assert doc["device"]["python"].startswith("3.11")
    results = {r["key"]: r for r in doc["results"]}
    assert set(results) == {a.key for a in test_profile().artifacts}
    for key, r in results.items():
        assert r["ok"], f"{key}: {r['error']}"
        assert r["runs"] == 10 and r["latency_ms"]["p50"] > 0
    assert {r["runtime"] for r in results.values()} == {"onnxruntime", "ai_edge_litert"}


def test_arm64_outputs_match_the_host_reference(
        ssh: SSHTransport, runtime_board: Board, release: tuple[Path, str]) -> None:
    bundle, release_id = release
    remote = f"{runtime_board.root}/releases/{release_id}"
    res = ssh.run([runtime_board.python, "-c", OUTPUTS_SCRIPT, remote, str(SAMPLES)], timeout=900)
    on_board, on_host = json.loads(res.stdout), run_outputs_on_host(bundle)
    assert set(on_board) == set(on_host) == {a.key for a in test_profile().artifacts}
    drift = {k: float(np.max(np.abs(np.subtract(on_board[k]["values"], h["values"]))))
             for k, h in on_host.items()}
    if os.environ.get("EDGESHIP_ARM64_REPORT"):  # beside the agent's report
        Path(os.environ["EDGESHIP_ARM64_REPORT"]).with_suffix(".drift.json").write_text(
            json.dumps({"samples": SAMPLES, "max_abs_diff_vs_host": drift}, indent=2) + "\n")
    for key, host in on_host.items():
        ref, got = np.asarray(host["values"]), np.asarray(on_board[key]["values"])
        assert got.shape == ref.shape == (SAMPLES, 10), key
        # fp32: float rounding only. int8: one quantization step of the output (kernels on
        # arm64 and x86 may round an accumulator differently); ONNX QDQ: a few % of the range.
        step = float(host["step"])  # type: ignore[arg-type]
        tol = 1.01 * step if step else (1e-4 if "fp32" in key else 0.05 * np.ptp(ref))
        assert np.max(np.abs(got - ref)) <= tol, (key, float(np.max(np.abs(got - ref))), tol)
        assert np.mean(got.argmax(1) == ref.argmax(1)) >= 3 / 4, key
