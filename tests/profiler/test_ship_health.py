"""The health probe after a switch: a broken release is rolled back automatically."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from devices import Board
from profiler.health import check_health
from profiles import load_profile
from runtimes import SSHTransport, ship_bundle

pytestmark = pytest.mark.ssh
NewBundle = Callable[..., Path]


def test_broken_release_is_rolled_back_and_reported(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    profile = load_profile("sim")
    good = new_bundle(keys=("onnx-fp32",))
    shipped, _ = check_health(transport, board, profile, ship_bundle(transport, board, good))
    assert shipped.health is not None and shipped.health["ok"] and not shipped.rolled_back
    broken = new_bundle(keys=("onnx-fp32",), extra={"model.fp32.onnx": b"not a model"})
    shipped, doc = check_health(transport, board, profile, ship_bundle(transport, board, broken))
    assert shipped.rolled_back and shipped.health is not None and not shipped.health["ok"]
    assert shipped.health["rolled_back_to"] == good.name and shipped.health["runs"] == 3
    assert os.readlink(Path(board.root) / "current") == f"releases/{good.name}"
