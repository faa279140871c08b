"""The agent's statistics and helpers on known inputs (imported as a module, no board)."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import numpy as np
import pytest

from profiler import AGENT_PATH


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgeship_agent_under_test", AGENT_PATH)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_stats_on_known_values(agent: ModuleType) -> None:
    s = agent.stats([float(x) for x in range(1, 101)])  # 1..100 ms
    assert (s["min"], s["max"], s["mean"]) == (1.0, 100.0, 50.5)
    assert s["p50"] == 50.5 and s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101)), rel=1e-6)
    assert agent.stats([2.0])["p99"] == 2.0


def test_histogram_counts_every_sample_and_downsample_keeps_order(agent: ModuleType) -> None:
    values = [1.0] * 50 + [2.0] * 30 + [10.0] * 20
    hist = agent.histogram(values, bins=9)
    assert sum(hist["counts"]) == 100 and hist["edges"][0] == 1.0 and hist["edges"][-1] == 10.0
    assert hist["counts"][:2] == [50, 30] and hist["counts"][-1] == 20
    assert agent.downsample(list(range(10)), 4) == [0, 3, 6, 9]
    assert agent.downsample([0.123456], 100) == [0.1235]


def test_stability_rule(agent: ModuleType) -> None:
    assert not agent.is_stable([1.0, 1.0], 3, 0.02)
    assert agent.is_stable([5.0, 1.0, 1.01, 1.015], 3, 0.02)
    assert not agent.is_stable([1.0, 1.05, 1.0], 3, 0.02)


def test_batched_feeds_stack_and_wrap(agent: ModuleType, tmp_path) -> None:
    np.savez(tmp_path / "s.npz", input=np.arange(3 * 2, dtype=np.float32).reshape(3, 2))
    samples = np.load(tmp_path / "s.npz")
    feeds = agent.prepare_feeds(samples, [{"source_name": "input"}], batch=2)
    assert len(feeds) == 3 and feeds[0][0].shape == (2, 2)
    assert feeds[2][0].tolist() == [[4.0, 5.0], [0.0, 1.0]]  # wraps around


def test_a_scalar_input_fed_as_one_element(agent: ModuleType, tmp_path) -> None:
    """onnx2tf turns a scalar input (silero-vad's sample rate) into shape [1]."""
    np.savez(tmp_path / "s.npz", sr=np.full(3, 16000, np.int64))
    samples = np.load(tmp_path / "s.npz")
    feeds = agent.prepare_feeds(samples, [{"source_name": "sr", "batch_axis": None,
                                           "shape": [1]}])
    assert feeds[0][0].shape == (1,) and feeds[0][0].tolist() == [16000]
    whole = agent.prepare_feeds(samples, [{"source_name": "sr", "batch_axis": None,
                                           "shape": []}])
    assert whole[0][0].shape == ()


def test_ort_trace_summary_finds_cpu_fallback(agent: ModuleType) -> None:
    def node(name: str, op: str, provider: str, dur: int) -> dict:
        return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur,
                "args": {"op_name": op, "provider": provider}}

    trace = [node("conv", "Conv", "CUDAExecutionProvider", 90), node("nms", "NonMaxSuppression",
             "CPUExecutionProvider", 300), node("conv", "Conv", "CUDAExecutionProvider", 110),
             {"cat": "Session", "name": "model_run", "dur": 999}]
    s = agent.summarize_ort_trace(trace, ["CUDAExecutionProvider", "CPUExecutionProvider"], 5, 2)
    assert [n["node"] for n in s["top"]] == ["nms", "conv"]
    assert s["top"][1]["calls"] == 2 and s["top"][1]["mean_us"] == 100.0
    assert s["fallback_to_cpu"] == [{"node": "nms", "op": "NonMaxSuppression"}]
    assert agent.summarize_ort_trace(trace, ["CPUExecutionProvider"], 5, 2)["fallback_to_cpu"] is None
    json.dumps(s)


def test_emulation_signals(agent: ModuleType) -> None:
    def read(path: str) -> str:
        return "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"

    emu = agent.detect_emulation("aarch64", "vendor_id\t: AuthenticAMD\n", read=read,
                                 readlink=lambda p: "/usr/bin/qemu-aarch64-static", ppid=1)
    assert emu["emulated"] and len(emu["signals"]) == 3 and "inflated" in emu["note"]
    native = agent.detect_emulation("aarch64", "CPU implementer\t: 0x41\n", read=lambda p: "",
                                    readlink=lambda p: "/usr/bin/bash", ppid=1)
    assert native == {"emulated": False, "signals": []}
