"""The agent's TensorRT runner, driven by a STAND-IN tensorrt/cuda (tests/profiler/fake_tensorrt).

No GPU and no TensorRT here: these tests check the runner's control flow (engine cache keys,
rebuilds, the 8.x/10.x API split, fallbacks to onnxruntime and what the result says about where
the artifact really ran), not TensorRT itself. The agent runs as on a board: a subprocess with
its child-per-artifact, the stand-in put on its PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rt_kit import _onnx_model, make_bundle

from profiler import AGENT_PATH

FAKE = Path(__file__).resolve().parent / "fake_tensorrt"
PROVIDERS = "TensorrtExecutionProvider,CUDAExecutionProvider,CPUExecutionProvider"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trt-models")
    _onnx_model(out / "model.fp32.onnx")
    return out


def _bundle(models: Path, root: Path, bundle_id: str = "b00000000000000a1",
            **artifact: Any) -> Path:
    bundle = make_bundle(models, root / "releases", bundle_id, keys=("onnx-fp32",))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifacts"][0].update(artifact)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _run(bundle: Path, *extra: str, fake: bool = True, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_TRT")}
    environ.update(env)
    environ["PYTHONPATH"] = str(FAKE) if fake else ""
    proc = subprocess.run([sys.executable, str(AGENT_PATH), "--release", str(bundle), "--runs",
                           "20", "--warmup", "2", "--op-top", "0", "--accelerator", "required",
                           *extra], capture_output=True, text=True, env=environ, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["results"][0]
    assert result["ok"], result["error"]
    return result  # type: ignore[no-any-return]


def _builds(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_engine_is_built_once_and_reused(models: Path, tmp_path: Path) -> None:
    bundle, log = _bundle(models, tmp_path), tmp_path / "builds.log"
    first = _run(bundle, "--tensorrt", "onnx-fp32", FAKE_TRT_BUILD_LOG=str(log))
    trt = first["tensorrt"]
    assert first["runtime"] == "tensorrt" and trt["engine"]["cached"] is False
    assert trt["engine"]["path"].startswith(str(tmp_path / "engines"))  # <root>/engines
    assert trt["api"] == "tensor (execute_async_v3)" and trt["cuda"].startswith("cuda-python")
    assert set(trt["gpu_compute_ms"]) == set(first["latency_ms"])
    assert trt["gpu_compute_ms"]["p50"] <= first["latency_ms"]["p50"]  # host wraps GPU time
    assert trt["engine"]["size_bytes"] == trt["device_memory"]["engine_bytes"] > 0
    assert trt["layer_precisions"] == {"available": True, "layers": 3, "by_precision": {"fp32": 3}}
    assert first["accelerator"]["ok"] and first["accelerator"]["device"] == "GPU"
    assert "TensorRT 10.3.0" in first["accelerator"]["executed_by"]
    again = _run(bundle, "--tensorrt", "onnx-fp32", FAKE_TRT_BUILD_LOG=str(log))
    assert again["tensorrt"]["engine"]["cached"] is True and len(_builds(log)) == 1
    assert again["tensorrt"]["engine"]["key"] == trt["engine"]["key"]


def test_a_tensorrt_upgrade_or_another_release_rebuilds(models: Path, tmp_path: Path) -> None:
    bundle, log = _bundle(models, tmp_path), tmp_path / "builds.log"
    ten = _run(bundle, "--tensorrt", "onnx-fp32", FAKE_TRT_BUILD_LOG=str(log))
    eight = _run(bundle, "--tensorrt", "onnx-fp32", FAKE_TRT_BUILD_LOG=str(log),
                 FAKE_TRT_VERSION="8.6.1")
    assert eight["tensorrt"]["api"] == "bindings (execute_async_v2)"
    assert eight["tensorrt"]["engine"]["cached"] is False
    assert eight["tensorrt"]["engine"]["key"] != ten["tensorrt"]["engine"]["key"]
    other = _bundle(models, tmp_path, "b00000000000000a2")
    _run(other, "--tensorrt", "onnx-fp32", FAKE_TRT_BUILD_LOG=str(log))
    assert [line.split()[1] for line in _builds(log)] == ["10.3.0", "8.6.1", "10.3.0"]


def test_trtexec_times_the_same_cached_engine(models: Path, tmp_path: Path) -> None:
    path = f"{FAKE / 'bin'}{os.pathsep}{os.environ['PATH']}"
    res = _run(_bundle(models, tmp_path), "--tensorrt", "onnx-fp32", "--trtexec", PATH=path)
    engine = res["tensorrt"]["engine"]["path"]
    assert res["trtexec"]["ran"] and res["trtexec"]["argv"] == [f"--loadEngine={engine}",
                                                                "--duration=3"]
    assert any("=== Performance summary ===" in line for line in res["trtexec"]["output_tail"])


def test_pycuda_when_cuda_python_is_missing(models: Path, tmp_path: Path) -> None:
    res = _run(_bundle(models, tmp_path), "--tensorrt", "onnx-fp32", FAKE_CUDA_PYTHON="0")
    assert res["tensorrt"]["cuda"] == "pycuda 2024.1 (stand-in)"
    assert res["tensorrt"]["gpu"] == "Maxwell (STAND-IN, no GPU)" and res["accelerator"]["ok"]


def test_precision_flags_follow_the_artifact(models: Path, tmp_path: Path) -> None:
    fp16 = _run(_bundle(models, tmp_path, precision="fp16"), "--tensorrt", "onnx-fp32")
    assert fp16["tensorrt"]["engine"]["flags"] == ["FP16"]
    assert fp16["tensorrt"]["layer_precisions"]["by_precision"] == {"fp16": 3}
    slow = _run(_bundle(models, tmp_path / "b", precision="fp16"), "--tensorrt", "onnx-fp32",
                FAKE_TRT_FAST_FP16="0")
    assert slow["tensorrt"]["engine"]["flags"] == ["FP32"]
    assert "no fast fp16" in slow["tensorrt"]["engine"]["notes"][0]
    qdq = _run(_bundle(models, tmp_path / "c", precision="int8",
                       quantization={"mode": "static"}), "--tensorrt", "onnx-fp32")
    assert qdq["tensorrt"]["engine"]["flags"] == ["FP16", "INT8"]
    assert qdq["tensorrt"]["layer_precisions"]["by_precision"] == {"int8": 1, "fp16": 2}


def test_dynamic_int8_falls_back_to_onnxruntime_and_says_why(models: Path,
                                                              tmp_path: Path) -> None:
    res = _run(_bundle(models, tmp_path, precision="int8", quantization={"mode": "dynamic"}),
               "--tensorrt", "onnx-fp32")
    accel = res["accelerator"]
    assert res["runtime"] == "onnxruntime" and not accel["ok"] and accel["device"] == "CPU"
    assert "not QDQ" in accel["reason"] and "a CPU build" in accel["reason"]


def test_an_unsupported_op_runs_on_the_cpu_and_is_named(models: Path, tmp_path: Path) -> None:
    res = _run(_bundle(models, tmp_path), "--tensorrt", "onnx-fp32",
               FAKE_TRT_UNSUPPORTED_OPS="Relu")
    accel = res["accelerator"]
    assert res["runtime"] == "onnxruntime" and accel["device"] == "CPU" and not accel["ok"]
    assert accel["reason"].startswith("op Relu not supported by TensorRT, ran on CPU")


def test_no_tensorrt_on_the_board(models: Path, tmp_path: Path) -> None:
    res = _run(_bundle(models, tmp_path), "--tensorrt", "onnx-fp32", fake=False)
    accel = res["accelerator"]
    assert res["runtime"] == "onnxruntime" and res["providers"] == ["CPUExecutionProvider"]
    assert accel["requested"] == "TensorRT" and accel["policy"] == "required"
    assert accel["reason"].startswith("TensorRT not installed on the board")
    assert "CPUExecutionProvider (a CPU build)" in accel["reason"]


def test_gpu_providers_missing_from_onnxruntime_use_tensorrt(models: Path,
                                                            tmp_path: Path) -> None:
    bundle = _bundle(models, tmp_path)
    res = _run(bundle, "--providers", PROVIDERS)
    assert res["runtime"] == "tensorrt" and res["accelerator"]["ok"]
    assert "ran it with TensorRT instead" in res["accelerator"]["note"]
    cpu = _run(bundle, "--providers", PROVIDERS, fake=False)
    assert cpu["runtime"] == "onnxruntime" and cpu["accelerator"]["device"] == "CPU"
    assert cpu["accelerator"]["requested"] == PROVIDERS.split(",")[:2]
    plain = _run(bundle, fake=False)  # nothing asked, nothing flagged
    assert plain["accelerator"]["requested"] is None and plain["accelerator"]["ok"]


def _agent_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(FAKE))
    for name in [m for m in sys.modules if m.split(".")[0] in ("tensorrt", "cuda")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("edgeship_agent_under_test", AGENT_PATH)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_outputs_match_onnxruntime_through_both_apis(models: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    agent = _agent_module(monkeypatch)
    x = np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)
    want = ort.InferenceSession(str(models / "model.fp32.onnx")).run(None, {"input": x})[0]
    trt = agent.import_tensorrt()
    for version in ("10.3.0", "8.5.2"):
        monkeypatch.setattr(trt, "__version__", version)
        monkeypatch.setattr(trt, "_MAJOR", int(version.split(".")[0]))
        runner = agent.TensorRTRunner(str(models / "model.fp32.onnx"), 1, [], 1,
                                      artifact={"key": "onnx-fp32", "precision": "fp32"},
                                      input_names=["input"], samples={"input": x})
        (got,) = runner(runner.prepare([x]))
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert runner.tensor_api is (version == "10.3.0")


def test_cache_key_covers_release_artifact_version_and_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent_module(monkeypatch)
    art = {"key": "onnx-fp16", "sha256": "ab" * 32, "precision": "fp16"}
    base = agent.engine_cache_key("r1", art, "10.3.0", "Orin")
    variants = [agent.engine_cache_key("r2", art, "10.3.0", "Orin"),
                agent.engine_cache_key("r1", dict(art, sha256="cd" * 32), "10.3.0", "Orin"),
                agent.engine_cache_key("r1", art, "8.5.2", "Orin"),
                agent.engine_cache_key("r1", art, "10.3.0", "Xavier")]
    assert len({base, *variants}) == 5 and base == agent.engine_cache_key("r1", art, "10.3.0",
                                                                           "Orin")
    assert agent.unsupported_op("In node 2 (importOp): UNSUPPORTED_NODE: No importer "
                                "registered for op: NonMaxSuppression") == "NonMaxSuppression"


def _quantized(models: Path, out: Path, symmetric: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    import onnxruntime as ort

    src = models / "model.fp32.onnx"
    name = ort.InferenceSession(str(src)).get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in name.shape]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.it = iter([{name.name: rng.random(shape, dtype=np.float32)} for _ in range(4)])

        def get_next(self) -> Any:
            return next(self.it, None)

    out.mkdir(parents=True, exist_ok=True)
    quantize_static(str(src), str(out / "model.fp32.onnx"), Reader(),
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True} if symmetric else {})
    return out


def test_asymmetric_qdq_is_refused_by_tensorrt_and_said(models: Path, tmp_path: Path) -> None:
    """The stand-in parser applies TensorRT's Q/DQ rule (zero points all 0): onnxruntime's
    default uint8 QDQ does not build and the row says so; symmetric int8 QDQ does."""
    bad = _run(_bundle(_quantized(models, tmp_path / "u8", False), tmp_path / "a",
                       precision="int8", quantization={"mode": "static"}),
               "--tensorrt", "onnx-fp32")
    assert bad["runtime"] == "onnxruntime" and not bad["accelerator"]["ok"]
    assert "symmetric quantization" in bad["accelerator"]["reason"]
    good = _run(_bundle(_quantized(models, tmp_path / "s8", True), tmp_path / "b",
                        precision="int8", quantization={"mode": "static", "symmetric": True}),
                "--tensorrt", "onnx-fp32")
    assert good["runtime"] != "onnxruntime" and good["accelerator"]["ok"], good["accelerator"]
