"""End to end through the real CLI: demo model → bundle → real sshd board → agent → report.

Each test drives ``edgeship`` as a user would (a subprocess), with its own ``EDGESHIP_HOME`` so
nothing of the developer's state is touched; the board runtime's wheels come from the shared
host wheelhouse cache, so they are downloaded once per machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ssh

EDGESHIP = [sys.executable, "-m", "edgeship"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, trained briefly (1 epoch is enough for a >80% digit classifier)."""
    out = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-m", "edgeship.demo", "--out", str(out), "--epochs", "1"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("home")
    environ = {**os.environ, "EDGESHIP_HOME": str(home / ".edgeship"),
               "EDGESHIP_REPORTS": str(home / "reports"), "COLUMNS": "200"}
    yield environ
    subprocess.run([*EDGESHIP, "board", "down", "sim"], env=environ, capture_output=True)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated board with the real `sim` profile, its accuracy gate loosened for the
    briefly-trained model (int8 may cost it ~1 pt; the demo's 8-epoch model loses none)."""
    import yaml

    from profiles import PROFILE_DIR

    folder = tmp_path_factory.mktemp("inventory")
    profile = yaml.safe_load((PROFILE_DIR / "sim.yaml").read_text())
    profile["budgets"]["max_accuracy_drop"] = 0.05
    (folder / "sim.yaml").write_text(yaml.safe_dump(profile))
    (folder / "inventory.yaml").write_text(
        "all:\n  hosts:\n    sim:\n      edgeship_simulated: true\n"
        f"      edgeship_profile: {folder / 'sim.yaml'}\n")
    return folder / "inventory.yaml"


def edgeship(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGESHIP, *args], env=env, capture_output=True, text=True, timeout=900)


def test_deploy_demo_then_redeploy_reuses_everything(demo: Path, env: dict[str, str],
                                                      inventory: Path) -> None:
    args = ("deploy", "--device", "sim", "--inventory", str(inventory), "--model", str(demo / "digits_cnn.pt2"),
            "--data", str(demo / "digits.npz"), "--json")
    first = edgeship(env, *args)
    assert first.returncode == 0, first.stderr
    assert all(ln.startswith("edgeship: ") for ln in first.stderr.splitlines()), first.stderr
    said = [ln for ln in first.stderr.splitlines() if "warning" in ln.lower()]
    assert len(said) == len(set(said)), first.stderr  # each thing said once, no TFLite INFO
    report = json.loads(first.stdout)
    assert {a["key"] for a in report["artifacts"]} == {"onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"}
    card = json.loads((demo / "model_card.json").read_text())
    for art in report["artifacts"]:
        assert art["ok"], art
        assert len(art["sha256"]) == 64 and art["size_bytes"] > 1000
        assert abs(art["accuracy"] - card["test_accuracy"]) <= 0.02
        lat = art["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert art["peak_rss_mb"] > 10
        assert art["verdict"] in ("pass", "fail")
    assert report["ship"]["bytes_sent"] > 0 and not report["bundle"]["reused"]
    assert report["device_facts"]["machine"] == os.uname().machine
    saved = sorted(Path(env["EDGESHIP_REPORTS"], "sim").glob("*/report.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["bundle"]["id"] == report["bundle"]["id"]

    again = json.loads(edgeship(env, *args).stdout)
    assert again["bundle"] == {**report["bundle"], "reused": True}
    assert again["ship"]["reused"] and again["ship"]["bytes_sent"] == 0


def test_deploy_with_synthetic_inputs_says_each_warning_once(demo: Path, env: dict[str, str],
                                                              tmp_path: Path) -> None:
    """No --data: synthetic inputs. Each warning once on stderr, nothing but edgeship's voice."""
    profile = tmp_path / "onnx.yaml"
    profile.write_text("arch: x86_64\nartifacts:\n  - {format: onnx, precision: fp32}\n"
                       "  - {format: onnx, precision: int8}\nprofiling: {warmup: 2, runs: 10}\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    sim:\n      edgeship_simulated: true\n"
                         f"      edgeship_profile: {profile}\n")
    res = edgeship(env, "deploy", "--device", "sim", "--inventory", str(inventory), "--model",
                   str(demo / "digits_cnn.pt2"), "--input-shape", "input=1x1x28x28", "--json")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert all(ln.startswith("edgeship: ") for ln in lines), res.stderr
    assert sum("synthetic random inputs" in ln for ln in lines) == 1, res.stderr
    said = [ln for ln in lines if "warning" in ln.lower()]
    assert len(said) == len(set(said)), res.stderr


def test_table_output_with_ship_options(demo: Path, env: dict[str, str], inventory: Path) -> None:
    res = edgeship(env, "deploy", "--inventory", str(inventory), "--compress", "--keep", "2",
                   "--retries", "1", "--lock-wait", "5", "--model", str(demo / "digits_cnn.pt2"), "--data", str(demo / "digits.npz"))
    assert res.returncode == 0, res.stderr
    for text in ("tflite-int8", "p99 ms", "peak RSS MB", "report: "):
        assert text in res.stdout


def _one_line_error(res: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    line = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(line) == 1, res.stderr
    for needle in needles:
        assert needle in line[0], line[0]


def test_unknown_device(env: dict[str, str]) -> None:
    _one_line_error(edgeship(env, "deploy", "--device", "jetsn"), 2, "did you mean 'jetson'")


def test_bad_ship_option_is_a_usage_error(env: dict[str, str]) -> None:
    res = edgeship(env, "deploy", "--keep", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--keep" in res.stderr


def test_missing_model(env: dict[str, str], tmp_path: Path) -> None:
    _one_line_error(edgeship(env, "convert", "--model", str(tmp_path / "nope.pt2")), 3, "nope.pt2")


def test_corrupt_onnx_leaves_nothing_in_the_cache(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    bundles = Path(env["EDGESHIP_HOME"], "bundles")
    before = set(bundles.iterdir()) if bundles.exists() else set()
    _one_line_error(edgeship(env, "convert", "--model", str(bad)), 3, "broken.onnx")
    after = set(bundles.iterdir()) if bundles.exists() else set()
    assert after == before


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening: refused, and no one else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_unreachable_board(demo: Path, env: dict[str, str], tmp_path: Path,
                           closed_port: int) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text("arch: x86_64\nartifacts: [{format: onnx, precision: fp32}]\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"all:\n  hosts:\n    far:\n      ansible_host: 127.0.0.1\n"
                         f"      ansible_port: {closed_port}\n      edgeship_profile: {profile}\n")
    res = edgeship(env, "deploy", "--device", "far", "--inventory", str(inventory),
                   "--model", str(demo / "digits_cnn.pt2"), "--data", str(demo / "digits.npz"))
    _one_line_error(res, 5, "far", "unreachable")


def _outlier_mlp(folder: Path) -> tuple[Path, Path]:
    """An ONNX MLP whose int8 collapses (one hidden unit at 2000) and its data: labels are the
    float model's own predictions, so fp32 passes and a plain int8 fails its accuracy gate."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(0, 0.5, (16, 32)).astype(np.float32), np.zeros(32, np.float32)
    w2 = rng.normal(0, 0.5, (32, 10)).astype(np.float32)
    b1[0], w2[0, :] = 2000.0, w2[0, :] * 1e-4
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             h.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             h.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             h.make_node("MatMul", ["r1", "w2"], ["logits"], name="fc2")]
    graph = h.make_graph(nodes, "outlier",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                         [h.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                         [nh.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2")]])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "outlier.onnx"))
    x = rng.normal(0, 1, (200, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(folder / "outlier.onnx"), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))]).argmax(1)
    np.savez(folder / "outlier.npz", x=x, labels=y, **{"calibration.x": x[:100]})
    return folder / "outlier.onnx", folder / "outlier.npz"


def test_partial_result_exits_8_and_ships_and_profiles_only_what_was_built(
        env: dict[str, str], tmp_path: Path) -> None:
    model, data = _outlier_mlp(tmp_path)
    profile = tmp_path / "partial.yaml"
    profile.write_text("name: partial\narch: x86_64\nbudgets: {max_accuracy_drop: 0.05}\n"
                       "profiling: {runs: 5, warmup: 1}\n"
                       "artifacts: [{format: onnx, precision: fp32},\n"
                       "  {format: onnx, precision: int8, quantization: {fallback: false}}]\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    sim:\n      edgeship_simulated: true\n"
                         f"      edgeship_profile: {profile}\n")
    conv = edgeship(env, "convert", "--profile", str(profile), "--model", str(model),
                    "--data", str(data), "--json")
    assert conv.returncode == 8, conv.stderr
    [left] = json.loads(conv.stdout)["left_out"]
    assert left["key"] == "onnx-int8" and left["stage"] == "verify"
    assert "accuracy drop" in left["cause"]

    res = edgeship(env, "deploy", "--device", "sim", "--inventory", str(inventory),
                   "--model", str(model), "--data", str(data), "--json")
    assert res.returncode == 8, res.stderr
    report = json.loads(res.stdout)
    assert report["verdict"] == "partial"
    assert [lo["key"] for lo in report["left_out"]] == ["onnx-int8"]
    assert [a["key"] for a in report["artifacts"]] == ["onnx-fp32"] and report["artifacts"][0]["ok"]
    assert "profiling 1 artifact on 'sim' (onnx-fp32)" in res.stderr
    table = edgeship(env, "deploy", "--device", "sim", "--inventory", str(inventory),
                     "--model", str(model), "--data", str(data))
    assert table.returncode == 8
    assert "left out" in table.stdout and "verdict partial" in table.stdout
