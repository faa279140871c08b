"""The arm64 board as a full qemu-system-aarch64 VM (runtimes/sim/vmboard.py): real memory figures.

Boots the Debian arm64 kernel with 2 GB (a 2 GB Pi 4; TCG, no KVM needed), SSHes in, checks the
architecture and that /proc/meminfo is the VM's, provisions onnxruntime offline and runs the agent
on a tiny ONNX bundle for a real peak RSS. First run builds the VM image (~2-3 min on top of the
arm64 rootfs, ~7 min when that is missing too).

``EDGESHIP_ARM64_VM_REPORT=path.json`` saves the agent's report there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arm64_kit import test_profile
from rt_kit import _onnx_model, make_bundle

from core.paths import Paths
from devices import Board
from profiler import measure_release
from runtimes import SSHTransport, ensure_runtime, ship_bundle
from runtimes.sim.vmboard import QEMU, VmBoard


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the arm64 VM board needs root (9p share of its state dir, image build)"
    if shutil.which(QEMU) is None:
        return f"{QEMU} is missing (apt-get install qemu-system-arm)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.ssh,
              pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))]

MEMORY_MB = 2048


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmBoard]:
    board = VmBoard(Paths(home=tmp_path_factory.mktemp("vm-home")), memory_mb=MEMORY_MB)
    try:
        started = time.perf_counter()
        board.up()
        print(f"\nVM board up in {time.perf_counter() - started:.1f} s")
        yield board
    finally:
        board.down()


@pytest.fixture(scope="module")
def ssh(vm: VmBoard) -> Iterator[SSHTransport]:
    with SSHTransport(vm.board(), vm.paths.known_hosts, connect_timeout=60, look_for_keys=False,
                      allow_agent=False, system_host_keys=False) as tr:
        yield tr


def test_vm_is_aarch64_with_its_own_memory(vm: VmBoard, ssh: SSHTransport) -> None:
    assert vm.status().running
    assert ssh.run(["uname", "-m"]).stdout.strip() == "aarch64"
    meminfo = ssh.run(["cat", "/proc/meminfo"]).stdout
    total_kb = int(next(ln for ln in meminfo.splitlines() if ln.startswith("MemTotal:")).split()[1])
    print(f"MemTotal in the VM: {total_kb} kB")
    # The VM's RAM less the kernel's reservations, nowhere near the host's.
    assert 0.85 * MEMORY_MB * 1024 < total_kb <= MEMORY_MB * 1024


def test_vm_runs_the_agent_with_real_rss(vm: VmBoard, ssh: SSHTransport, tmp_path: Path) -> None:
    python = ensure_runtime(ssh, vm.board())
    board: Board = vm.board().model_copy(update={"python": python})
    models = tmp_path / "models"
    models.mkdir()
    _onnx_model(models / "model.fp32.onnx")
    bundle = make_bundle(models, tmp_path / "bundles", "vmtiny0000000001", keys=("onnx-fp32",))
    release = ship_bundle(ssh, board, bundle).release_id
    doc = measure_release(ssh, board, test_profile(), release)
    if os.environ.get("EDGESHIP_ARM64_VM_REPORT"):
        Path(os.environ["EDGESHIP_ARM64_VM_REPORT"]).write_text(json.dumps(doc, indent=2) + "\n")
    device, (result,) = doc["device"], doc["results"]
    print(f"device: {json.dumps(device)}\nresult rss_mb: {result.get('rss_mb')}, "
          f"latency_ms: {result.get('latency_ms')}")
    assert device["machine"] == "aarch64"
    assert result["ok"], result.get("error")
    assert result["runtime"] == "onnxruntime"
    peak = result["rss_mb"]["peak"]
    assert 0 < peak < MEMORY_MB
