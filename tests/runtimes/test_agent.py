"""The on-board agent, run on the simulated board through profile_release."""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devices import Board
from edgeship.errors import ProfileError
from profiles import Profile, load_profile
from runtimes import AGENT_PATH, AGENT_VERSION, SSHTransport, profile_release, ship_bundle
from runtimes.profile import DEVICE_FIELDS, LATENCY_FIELDS, RESULT_FIELDS

NewBundle = Callable[..., Path]


def _profile(**profiling: object) -> Profile:
    base = load_profile("sim")
    opts = {"warmup": 5, "runs": 50, **profiling}
    return base.model_copy(update={"profiling": base.profiling.model_copy(update=opts)})


def test_agent_is_python38_syntax_and_versioned() -> None:
    source = AGENT_PATH.read_text()
    ast.parse(source, feature_version=(3, 8))
    assert re.search(rf'^AGENT_VERSION = "{re.escape(AGENT_VERSION)}"$', source, re.M)
    assert not re.search(r"\.removeprefix\(|\.removesuffix\(|^\s*match |:=", source, re.M)


@pytest.mark.ssh
def test_agent_measures_onnx_and_tflite(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle()
    ship_bundle(transport, board, bundle)
    doc = profile_release(transport, board, _profile())
    assert (
        doc["schema"] == 2
        and doc["agent_version"] == AGENT_VERSION
        and doc["release"] == bundle.name
    )
    device = doc["device"]
    assert set(DEVICE_FIELDS) <= set(device)
    assert device["machine"] == "x86_64" and device["python"] == "3.11.2" and device["cores"] >= 1
    assert device["ram_mb"] > 0 and "Debian" in device["os"] and isinstance(device["temps_c"], dict)
    by_key = {r["key"]: r for r in doc["results"]}
    assert sorted(by_key) == ["onnx-fp32", "tflite-fp32", "tflite-int8"]
    for result in by_key.values():
        assert set(RESULT_FIELDS) <= set(result) and result["ok"] and result["error"] is None
        lat = result["latency_ms"]
        assert set(LATENCY_FIELDS) <= set(lat)
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert (result["warmup"], result["runs"], result["threads"]) == (5, 50, 1)
        assert (
            result["load_ms"] > 0
            and result["first_inference_ms"] > 0
            and result["throughput_ips"] > 0
        )
        rss = result["rss_mb"]
        assert 0 < rss["before_load"] <= rss["after_load"] <= rss["peak"]
    assert by_key["onnx-fp32"]["runtime"] == "onnxruntime"
    assert by_key["onnx-fp32"]["runtime_version"] == "1.31.1"
    assert by_key["onnx-fp32"]["providers"] == ["CPUExecutionProvider"]
    assert by_key["tflite-int8"]["runtime"] == "ai_edge_litert"


@pytest.mark.ssh
def test_a_broken_artifact_fails_alone(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(
        keys=("onnx-fp32", "tflite-fp32"), extra={"model.fp32.onnx": b"\x08garbage"}
    )
    ship_bundle(transport, board, bundle)
    doc = profile_release(transport, board, _profile(), release_id=bundle.name)
    onnx, tflite = doc["results"]
    assert onnx["key"] == "onnx-fp32" and onnx["ok"] is False and onnx["error"]
    assert onnx["latency_ms"] is None
    assert tflite["ok"] is True and tflite["latency_ms"]["p50"] > 0


@pytest.mark.ssh
def test_a_child_past_its_timeout_is_reported_not_awaited(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",))
    ship_bundle(transport, board, bundle)
    res = transport.run(
        [
            board.python,
            f"{board.root}/current/edgeship_agent.py",
            "--release",
            f"{board.root}/current",
            "--timeout",
            "0.05",
        ]
    )
    assert '"timed out after 0.05 s"' in res.stdout and '"ok": false' in res.stdout


@pytest.mark.ssh
def test_a_hung_agent_becomes_a_profile_error(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, tmp_path: Path
) -> None:
    hanging = tmp_path / "hang.py"
    hanging.write_text("import time\ntime.sleep(600)\n")
    bundle = new_bundle(keys=("onnx-fp32",), agent=hanging)
    ship_bundle(transport, board, bundle)
    started = time.monotonic()
    with pytest.raises(ProfileError, match=r"agent on board 'sim' did not finish within 2 s"):
        profile_release(transport, board, _profile(timeout_s=2))
    assert time.monotonic() - started < 20  # not the agent's 600 s (slack for a busy host)
    agent = f"{board.root}/current/edgeship_agent.py"
    assert agent not in transport.run(["ps", "-eo", "args"]).stdout  # killed on the board too


@pytest.mark.ssh
def test_garbage_from_the_agent_is_a_profile_error(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, tmp_path: Path
) -> None:
    chatty = tmp_path / "chatty.py"
    chatty.write_text("print('Segmentation fault? no: just chatter')\n")
    bundle = new_bundle(keys=("onnx-fp32",), agent=chatty)
    ship_bundle(transport, board, bundle)
    with pytest.raises(ProfileError, match=r"invalid result \(not JSON\).*just chatter"):
        profile_release(transport, board, _profile())
