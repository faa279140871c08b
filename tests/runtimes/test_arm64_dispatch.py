"""Which simulated board an inventory entry starts (fast: nothing is started or built)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.paths import Paths
from devices import load_inventory
from runtimes import SimBoard
from runtimes.sim import board_for
from runtimes.sim.arm64board import ROOTFS_SCRIPT, Arm64Board, is_arm64_profile


@pytest.mark.parametrize(("profile", "arm64"), [("rpi4", True), ("rpi5", True), ("sim", False),
                                                 ("no-such-profile", False)])
def test_aarch64_profiles_need_the_arm64_userland(profile: str, arm64: bool) -> None:
    assert is_arm64_profile(profile) is arm64


def test_inventory_sim_arm64_is_an_emulated_rpi4_and_sim_stays_native(tmp_path: Path) -> None:
    inv, paths = load_inventory(), Paths(home=tmp_path)
    arm64 = board_for(paths, inv.board("sim-arm64"))
    native = board_for(paths, inv.board("sim"))
    assert isinstance(arm64, Arm64Board) and arm64.profile == "rpi4"
    assert type(native) is SimBoard
    assert "sim-arm64" not in inv.groups["simulated"]  # `simulated` group ops stay fast


def test_rootfs_path_is_keyed_and_under_the_cache(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESHIP_ARM64_CACHE", str(tmp_path))
    board = Arm64Board(Paths(home=tmp_path / "home"))
    assert board.rootfs.parent == tmp_path
    assert board.rootfs.name.startswith("bookworm-arm64-")
    assert ROOTFS_SCRIPT.exists() and not board.status().running
