"""bench/peers.py's parts on a tiny real ONNX model: the peers' builders, the runner, the
quality figures, the frontier and the targets (no wheel, no network, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import peer_tools
from bench.peer_eval import Runner, box_agreement, quality
from bench.peer_table import finish_rows, render


def _tiny_cnn(path: Path) -> Path:
    """Conv(3→8, 3x3) → Relu → GlobalAveragePool → Flatten → Gemm(8→4), opset 15."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.5, (4, 8)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.zeros(4, np.float32), "fcb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8),
              path)
    return path


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    x = np.random.default_rng(1).random((6, 3, 16, 16)).astype(np.float32)
    return _tiny_cnn(tmp_path / "fp32.onnx"), {"x": x}


def test_ort_peers_build_int8_graphs_that_run_close_to_fp32(tiny, tmp_path: Path) -> None:
    fp32, data = tiny
    static = peer_tools.ort_static(fp32, data, tmp_path / "s.onnx")
    dynamic = peer_tools.ort_dynamic(fp32, tmp_path / "d.onnx")
    ref = Runner(fp32, data)
    outs = [ref.run(i) for i in range(6)]
    labels = np.array([int(np.argmax(o[0])) for o in outs])
    for path in (static, dynamic):
        assert path.stat().st_size > 0
        got = [Runner(path, data).run(i) for i in range(6)]
        q = quality("accuracy", outs, got, labels)
        assert q["cosine"] > 0.95 and 0.0 <= q["quality"] <= 1.0
    assert quality("accuracy", outs, outs, labels) == {"cosine": 1.0, "quality": 1.0}
    wrong = quality("accuracy", outs, outs, (labels + 1) % 4)  # accuracy, not cosine
    assert wrong["quality"] == 0.0 and wrong["cosine"] == 1.0


def test_box_agreement_matches_same_class_boxes_and_counts_misses() -> None:
    def head(boxes: list[tuple[float, float, float, float, int, float]]) -> np.ndarray:
        h = np.zeros((1, 4 + 3, 8), np.float32)
        for a, (cx, cy, w, hh, c, s) in enumerate(boxes):
            h[0, :4, a], h[0, 4 + c, a] = (cx, cy, w, hh), s
        return h

    ref = head([(50, 50, 20, 20, 0, 0.9), (150, 150, 30, 30, 1, 0.8)])
    same = box_agreement([ref], [ref])
    assert same["box_f1"] == 1.0 and same["ref_boxes"] == 2
    moved = head([(52, 50, 20, 20, 0, 0.9), (150, 150, 30, 30, 2, 0.8)])  # 2nd: wrong class
    got = box_agreement([ref], [moved])
    assert got["box_f1"] == pytest.approx(0.5) and got["matched_iou"] < 1.0


def _row(name: str, runtime: str, size: int, ms: float, q: float, edgeship: bool = False):
    return {"name": name, "tool": "t", "edgeship": edgeship, "error": None, "file": "f",
            "runtime": runtime, "size_bytes": size, "latency_ms": ms, "quality": q,
            "cosine": 1.0}


def test_frontier_ratios_and_targets_name_what_is_missed() -> None:
    rows = [_row("fp32 (baseline)", "onnxruntime", 1000, 10.0, 0.90),
            _row("mine", "onnxruntime", 260, 5.0, 0.899, edgeship=True),
            _row("peer", "onnxruntime", 250, 4.0, 0.90),
            _row("fp32 TFLite (baseline)", "tflite", 1000, 8.0, 0.90),
            {"name": "broken", "tool": "t", "edgeship": False, "error": "onnx2tf: boom",
             "file": None}]
    finish_rows(rows, "accuracy")
    mine, peer = rows[1], rows[2]
    assert mine["latency_ratio"] == 0.5 and mine["size_ratio"] == 0.26
    assert not mine["frontier"] and peer["frontier"]  # the peer is smaller, faster, as good
    assert mine["misses"] == [] and peer["misses"] == []
    slow = _row("slow", "tflite", 300, 6.0, 0.88)
    rows.append(slow)
    finish_rows(rows, "accuracy")
    assert any("latency" in m for m in slow["misses"]) and any("size" in m for m in slow["misses"])
    text = render({"threads": 1, "runs": 100, "rounds": 5, "tools": {}, "workloads": [
        {"name": "w", "title": "W", "metric": "accuracy", "data": "d", "rows": rows}]})
    assert "failed: onnx2tf: boom" in text and "is dominated by peer" in text


def test_agreement_is_also_given_on_the_samples_fp32_is_sure_about() -> None:
    sure, unsure = np.array([[8.0, 0.0, 0.0]]), np.array([[0.1, 0.0, 0.05]])
    ref = [[sure], [unsure]]
    got = [[sure], [np.array([[0.0, 0.1, 0.05]])]]  # flips only the unsure one
    q = quality("agreement", ref, got, np.array([0, 0]))
    assert q["quality"] == 0.5 and q["confident"] == 1 and q["agreement_confident"] == 1.0
