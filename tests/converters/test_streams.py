"""Stateful models verified as they stream: each artifact carries its own state.

A leaky accumulator stands in for a VAD: ``stateN = 0.5 * state + x`` and
``y = sigmoid(sum(stateN))``, a probability.
The data is recorded from streaming the source (each sample's state is the source's output on
the sample before), as the zoo's Silero VAD data is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.streams import carried_feed, find_carries, pairs
from converters.verify import Reference, collect_outputs, compare
from core.paths import Paths

DIM = 8


def _step(feed: dict[str, np.ndarray], bias: float = 0.0) -> list[np.ndarray]:
    state = 0.5 * feed["state"] + feed["x"] + bias
    return [1.0 / (1.0 + np.exp(-state.sum(-1, keepdims=True))), state]


def _stream(n: int = 12, starts: tuple[int, ...] = (0, 6)) -> dict[str, np.ndarray]:
    """Two sequences of 6 chunks; the state of each chunk is the source's after the one before."""
    x = np.random.default_rng(0).normal(size=(n, DIM)).astype(np.float32)
    states, state = [], np.zeros((1, DIM), np.float32)
    for i in range(n):
        state = np.zeros_like(state) if i in starts else state
        states.append(state[0])
        state = _step({"x": x[i:i + 1], "state": state})[1]
    return {"x": x, "state": np.stack(states)}


def test_state_outputs_pair_with_their_inputs_by_name() -> None:
    for i, o in (("state", "stateN"), ("h0", "hn"), ("c0", "cn"), ("state_in", "state_out"),
                 ("h", "h_new"), ("cache", "next_cache"), ("in_cache", "out_cache")):
        assert pairs(i, o), (i, o)
    for i, o in (("state", "output"), ("x", "y"), ("input", "output"), ("h0", "h1")):
        assert not pairs(i, o), (i, o)


def test_continuing_samples_are_found_from_the_source_run() -> None:
    data = _stream()
    ref = collect_outputs(_step, data)
    [carry] = find_carries(data, list(ref), ["y", "stateN"])
    assert carry.input == "state" and carry.output == 1
    assert carry.continues == tuple(i not in (0, 6) for i in range(12))
    shuffled = {k: v[::-1].copy() for k, v in data.items()}  # not a stream: judged as before
    assert find_carries(shuffled, list(collect_outputs(_step, shuffled)), ["y", "stateN"]) == ()


def test_an_artifact_runs_with_its_own_state() -> None:
    """An artifact whose step is off by 0.01 drifts further with every chunk when it carries
    its own state — fed the source's states it would look 0.01 off on every chunk."""
    data = _stream()
    ref = Reference.of(collect_outputs(_step, data), ["y", "stateN"], inputs=data)
    assert ref.kinds[1] == ("state", "input 'state'") and ref.kinds[0][0] != "state"

    def off(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return _step(feed, bias=0.01)

    forced = collect_outputs(off, data)
    streamed = collect_outputs(off, data, carries=ref.carries)
    err_forced = np.abs(forced[1] - ref.outputs[1]).max(axis=1)
    err_streamed = np.abs(streamed[1] - ref.outputs[1]).max(axis=1)
    np.testing.assert_allclose(err_forced, 0.01, atol=1e-6)
    np.testing.assert_allclose(err_streamed[:6], [0.01 * (2 - 0.5 ** k) for k in range(6)],
                               atol=1e-6)  # 0.01, 0.015, 0.0175, … the state's own history
    feed = carried_feed({"x": data["x"][1:2], "state": data["state"][1:2]}, 1, ref.carries,
                        [np.zeros((1, 1)), np.full((1, DIM), 7.0)])
    assert (feed["state"] == 7.0).all() and feed["state"].dtype == np.float32


def test_the_state_is_judged_by_the_outputs_that_follow() -> None:
    data = _stream()
    ref = Reference.of(collect_outputs(_step, data), ["y", "stateN"], inputs=data)
    close = collect_outputs(lambda f: _step(f, 1e-4), data, carries=ref.carries)
    v = compare(close, ref, None, 0.01)
    assert v.passed
    assert "state 'stateN' carried into 10 samples, judged by their outputs" in v.reason
    state = next(o for o in v.outputs if o["name"] == "stateN")
    assert state["kind"] == "state" and state["checks"] == []
    far = collect_outputs(lambda f: _step(f, 0.5), data, carries=ref.carries)
    assert not compare(far, ref, None, 0.01).passed  # the outputs that follow show it
    off = collect_outputs(lambda f: _step(f, 0.01), data, carries=ref.carries)
    fp32 = compare(off, ref, None, 0.01, precision="fp32")
    assert not fp32.passed and "output 'stateN' (state)" in fp32.reason  # fp32: exact, state too


def _accumulator(path: Path) -> Path:
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    nodes = [h.make_node("Mul", ["state", "half"], ["kept"]),
             h.make_node("Add", ["kept", "x"], ["stateN"]),
             h.make_node("ReduceSum", ["stateN", "axes"], ["total"], keepdims=1),
             h.make_node("Sigmoid", ["total"], ["y"])]
    graph = h.make_graph(nodes, "acc", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                 [1, DIM]),
                                        h.make_tensor_value_info("state", TensorProto.FLOAT,
                                                                 [1, DIM])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1]),
                          h.make_tensor_value_info("stateN", TensorProto.FLOAT, [1, DIM])],
                         [nh.from_array(np.array(0.5, np.float32), "half"),
                          nh.from_array(np.array([-1], np.int64), "axes")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_bundle_of_a_streaming_model_records_the_carried_state(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from converters import build_bundle
    from profiles.schema import Profile

    np.savez(tmp_path / "d.npz", **_stream(24, (0, 8, 16)))
    profile = Profile.model_validate({"name": "t", "arch": "x86_64", "artifacts": [
        {"format": "onnx", "precision": "fp32"}, {"format": "onnx", "precision": "fp16"}]})
    bundle = build_bundle(str(_accumulator(tmp_path / "acc.onnx")), profile, tmp_path / "d.npz",
                          Paths(home=tmp_path / "home"), progress=lambda s: None)
    fp16 = next(a for a in bundle.manifest["artifacts"] if a["key"] == "onnx-fp16")
    kinds = {o["name"]: o["kind"] for o in fp16["verification"]["outputs"]}
    assert kinds == {"y": "classes", "stateN": "state"}  # a probability per sample: a decision
    assert "state 'stateN' carried into 21 samples" in fp16["verification"]["reason"]
