"""The TensorRT path on a REAL Jetson (marker ``board``; never run here: no Jetson on this host).

    EDGESHIP_JETSON=jetson pytest -m board tests/runtimes/test_board_jetson.py

``EDGESHIP_JETSON`` names a board of ``devices/inventory.yaml`` (or ``EDGESHIP_INVENTORY``) that
runs JetPack 5 or 6 with ``python3-libnvinfer`` and cuda-python or pycuda; its host key must be
known (``edgeship boards trust NAME``). The test provisions the board, ships a tiny ONNX model,
builds a TensorRT engine on the board, measures it, and measures it again from the engine cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rt_kit import _onnx_model, make_bundle

from core.paths import default_paths
from devices import load_inventory
from profiler import measure_release
from profiles import load_profile
from profiles.schema import Artifact
from runtimes import SSHTransport, ensure_runtime, probe_board, ship_bundle

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def jetson():  # type: ignore[no-untyped-def]
    name = os.environ.get("EDGESHIP_JETSON")
    if not name:
        pytest.skip("set EDGESHIP_JETSON to a Jetson of the inventory to run this on hardware")
    inventory = os.environ.get("EDGESHIP_INVENTORY")
    return load_inventory(Path(inventory) if inventory else None).board(name)


def test_tensorrt_engine_is_built_measured_and_cached_on_the_board(jetson, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = default_paths()
    profile = load_profile(jetson.profile)
    profile = profile.model_copy(update={
        "artifacts": (Artifact(format="onnx", precision="fp32", runner="tensorrt"),),
        "profiling": profile.profiling.model_copy(update={"warmup": 20, "runs": 200})})
    (tmp_path / "models").mkdir()
    _onnx_model(tmp_path / "models" / "model.fp32.onnx")
    bundle = make_bundle(tmp_path / "models", tmp_path / "b", f"jt{os.getpid():014x}",
                         keys=("onnx-fp32",))
    with SSHTransport(jetson, paths.known_hosts) as ssh:
        facts = probe_board(ssh)
        assert facts.jetson and facts.jetson["tensorrt_python"], facts.jetson
        board = jetson.model_copy(update={"python": ensure_runtime(ssh, jetson)})
        shipped = ship_bundle(ssh, board, bundle)
        first = measure_release(ssh, board, profile, shipped.release_id)["results"][0]
        again = measure_release(ssh, board, profile, shipped.release_id)["results"][0]
    assert first["ok"] and first["runtime"] == "tensorrt", first
    accel = first["accelerator"]
    assert accel["ok"] and accel["device"] == "GPU" and "TensorRT" in accel["executed_by"]
    trt = first["tensorrt"]
    assert trt["engine"]["cached"] is False and trt["engine"]["size_bytes"] > 0
    assert 0 < trt["gpu_compute_ms"]["p50"] <= first["latency_ms"]["p50"]
    assert trt["layer_precisions"]["available"], trt["layer_precisions"]
    assert again["tensorrt"]["engine"]["cached"] is True
    assert again["tensorrt"]["engine"]["key"] == trt["engine"]["key"]
