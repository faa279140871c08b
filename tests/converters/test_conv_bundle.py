"""converters.bundle: content id, cache reuse, atomic writes, the manifest contract."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import converters
from converters import build_bundle, bundle_id
from converters._util import file_sha256
from converters.data import BOARD_SAMPLES
from core.errors import ConfigError, VerificationError
from core.paths import Paths
from profiles import Artifact, Profile, load_profile

ARTIFACT_KEYS = {"key", "format", "precision", "file", "size_bytes", "sha256", "inputs", "outputs",
                 "verification", "host_latency_ms", "converter"}
OPTIONAL_ARTIFACT_KEYS = {"quantization", "slower_than_fp32", "fallback", "requested"}
VERIFICATION_KEYS = {"samples", "accuracy", "accuracy_drop", "top1_agreement", "max_abs_drift",
                     "cosine", "passed", "reason", "outputs", "first_divergence"}
OUTPUT_KEYS = {"name", "source_name", "shape", "dtype", "layout", "transpose", "matched_by"}


def _onnx_only(*precisions: str, **budgets: float) -> Profile:
    sim = load_profile("sim")
    update = {"artifacts": tuple(Artifact(format="onnx", precision=p) for p in precisions)}
    if budgets:
        update["budgets"] = sim.budgets.model_copy(update=budgets)
    return sim.model_copy(update=update)


def test_manifest_contract(sim_bundle, tiny) -> None:
    bundle, _ = sim_bundle
    m = bundle.manifest
    assert set(m) == {"schema", "bundle_id", "created", "source", "profile", "recipe", "tools",
                      "data", "reference", "files", "artifacts", "left_out", "timings"}
    assert m["schema"] == 2 and m["left_out"] == []
    assert m["bundle_id"] == bundle.id == bundle.path.name
    assert m["source"] == {"kind": "pt2", "ref": str(tiny.pt2), "sha256": file_sha256(tiny.pt2)}
    assert m["profile"] == load_profile("sim").model_dump(mode="json") and m["recipe"] == []
    assert set(m["tools"]) == {"edgeship", "torch", "onnx", "onnxruntime", "tensorflow", "onnx2tf"}
    assert all(m["tools"].values())
    assert m["data"] == {"ref": str(tiny.data), "sha256": file_sha256(tiny.data), "samples": 300,
                         "labels": True, "calibration": "calibration.image (100)",
                         "synthetic": False}
    assert [a["key"] for a in m["artifacts"]] == ["onnx-fp32", "onnx-int8", "tflite-fp32",
                                                   "tflite-int8"]
    for art in m["artifacts"]:
        assert ARTIFACT_KEYS <= set(art) <= ARTIFACT_KEYS | OPTIONAL_ARTIFACT_KEYS
        assert set(art["verification"]) == VERIFICATION_KEYS
        assert art["outputs"][0]["shape"] == [1, 10]
        assert set(art["outputs"][0]) == OUTPUT_KEYS and art["outputs"][0]["source_name"] == "logits"
        judged = art["verification"]["outputs"]
        assert [(o["name"], o["kind"]) for o in judged] == [("logits", "classes")]
    assert json.loads((bundle.path / "manifest.json").read_text()) == m


def test_files_and_hashes_match(sim_bundle) -> None:
    bundle, _ = sim_bundle
    on_disk = {p.name for p in bundle.path.iterdir()} - {"manifest.json"}
    assert on_disk == set(bundle.manifest["files"]) == {
        "model.fp32.onnx", "model.int8.onnx", "model.fp32.tflite", "model.int8.tflite",
        "samples.npz"}
    for name, info in bundle.manifest["files"].items():
        path = bundle.path / name
        assert info == {"sha256": file_sha256(path), "size_bytes": path.stat().st_size}
    for art in bundle.manifest["artifacts"]:
        assert art["sha256"] == bundle.manifest["files"][art["file"]]["sha256"]
    samples = np.load(bundle.path / "samples.npz")
    assert samples.files == ["input"] and samples["input"].shape == (BOARD_SAMPLES, 1, 28, 28)
    assert "labels" not in samples.files  # the evaluation set stays on the host


def test_progress_names_each_stage(sim_bundle) -> None:
    _, steps = sim_bundle
    for expected in ("exporting ONNX fp32", "quantizing ONNX int8", "converting to TFLite (fp32, int8)",
                     "verifying onnx-fp32", "verifying tflite-int8", "writing bundle"):
        assert expected in steps


def test_id_is_stable_and_tracks_the_profile_and_board_files() -> None:
    sim, agent = load_profile("sim"), {"edgeship_agent.py": "c" * 64}
    same = bundle_id("a" * 64, "b" * 64, sim, agent)
    assert same == bundle_id("a" * 64, "b" * 64, load_profile("sim"), dict(agent))
    assert len(same) == 16
    other = sim.model_copy(update={"opset": 17})
    assert bundle_id("a" * 64, "b" * 64, other, agent) != same
    assert bundle_id("a" * 64, "d" * 64, sim, agent) != same
    assert bundle_id("a" * 64, "b" * 64, sim, {"edgeship_agent.py": "e" * 64}) != same
    assert bundle_id("a" * 64, "b" * 64, sim) != same


def test_board_files_are_copied_in_and_listed(tiny, tmp_path: Path) -> None:
    """The orchestration's board files (the agent) travel in the bundle, hashed like the rest."""
    paths, profile = Paths(home=tmp_path), _onnx_only("fp32")
    script = tmp_path / "agent.py"
    script.write_text('AGENT_VERSION = "t"\n')
    bare = build_bundle(str(tiny.pt2), profile, tiny.data, paths)
    with_agent = build_bundle(str(tiny.pt2), profile, tiny.data, paths,
                              board_files={"edgeship_agent.py": script})
    assert with_agent.id != bare.id and not with_agent.reused
    assert (with_agent.path / "edgeship_agent.py").read_bytes() == script.read_bytes()
    assert "edgeship_agent.py" in with_agent.manifest["files"]
    assert "edgeship_agent.py" not in bare.manifest["files"]


def test_second_build_is_reused_without_export(sim_bundle, tiny, home: Paths,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bundle, _ = sim_bundle

    def refuse(*_args, **_kwargs):
        raise AssertionError("re-exported a cached bundle")

    monkeypatch.setattr("converters.pipeline.export_onnx", refuse)
    again = build_bundle(str(tiny.pt2), load_profile("sim"), tiny.data, home)
    assert again.reused and again.id == bundle.id and again.manifest == bundle.manifest


def test_failed_verification_leaves_nothing(tiny, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    from onnx import numpy_helper

    import converters.pipeline as build
    from profiles.schema import Quantization

    real = build.make_onnx_int8

    def broken_int8(fp32: Path, out: Path, calibration, *args, **kwargs):
        info = real(fp32, out, calibration, *args, **kwargs)
        model = onnx.load(str(out))
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.int8 and arr.ndim == 2:  # the quantized linear head
                init.CopyFrom(numpy_helper.from_array(arr[::-1].copy(), init.name))
        onnx.save(model, str(out))
        return info

    monkeypatch.setattr(build, "make_onnx_int8", broken_int8)
    paths = Paths(home=tmp_path)
    no_rescue = Artifact(format="onnx", precision="int8", quantization=Quantization(fallback=False),
                         required=True)
    profile = _onnx_only("fp32").model_copy(
        update={"artifacts": (Artifact(format="onnx", precision="fp32"), no_rescue)})
    with pytest.raises(VerificationError, match=r"onnx-int8.*accuracy drop 0\.\d+ > 0\.01 "
                       r"\(budgets\.max_accuracy_drop\) \[kind from its name; set "
                       r"fidelity\.outputs\.logits to change it\]; "
                       r"first diverging op: Gemm 'node_linear'"):
        build_bundle(str(tiny.pt2), profile, tiny.data, paths)
    assert list(paths.bundles.iterdir()) == []


def test_force_rebuilds_in_place(tiny, tmp_path: Path) -> None:
    paths, profile = Paths(home=tmp_path), _onnx_only("fp32")
    first = build_bundle(str(tiny.pt2), profile, tiny.data, paths)
    again = build_bundle(str(tiny.pt2), profile, tiny.data, paths, force=True)
    assert not first.reused and not again.reused and again.id == first.id
    assert [p.name for p in paths.bundles.iterdir()] == [first.id]


def test_factory_source_builds(tiny, factory_source: str, tmp_path: Path) -> None:
    bundle = build_bundle(factory_source, _onnx_only("fp16"), tiny.data, Paths(home=tmp_path))
    assert bundle.manifest["source"]["kind"] == "module"
    art = bundle.manifest["artifacts"][0]
    assert art["key"] == "onnx-fp16" and art["verification"]["passed"]
    assert set(bundle.manifest["files"]) == {"model.fp16.onnx", "samples.npz"}


def test_onnx_source_without_data_is_synthetic(sim_bundle, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    source = sim_bundle[0].path / "model.fp32.onnx"
    with caplog.at_level(logging.WARNING, logger="converters"):
        bundle = build_bundle(str(source), _onnx_only("fp32", "int8"), None, Paths(home=tmp_path))
    said = [r for r in caplog.records if "synthetic random inputs" in r.getMessage()]
    assert len(said) == 1  # said once: a log record (no longer also a UserWarning)
    m = bundle.manifest
    assert m["source"]["kind"] == "onnx" and m["data"]["synthetic"] is True
    assert m["data"]["calibration"].startswith("synthetic random inputs (32)")
    assert m["reference"] == {"accuracy": None}
    for art in m["artifacts"]:
        assert art["verification"]["accuracy"] is None and "drift only" in art["verification"]["reason"]


def test_torch_with_input_shapes_and_no_data(factory_source: str, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="converters"):
        bundle = build_bundle(factory_source, _onnx_only("fp32"), None, Paths(home=tmp_path),
                              input_shapes={"x": (1, 1, 28, 28)})
    assert "synthetic random inputs" in caplog.text
    art = bundle.manifest["artifacts"][0]
    assert art["inputs"][0]["name"] == "input" and art["inputs"][0]["shape"] == [1, 1, 28, 28]
    assert art["verification"]["passed"] and bundle.manifest["data"]["synthetic"] is True


def test_torch_without_data_needs_shapes(tiny, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs input shapes"):
        build_bundle(str(tiny.pt2), load_profile("sim"), None, Paths(home=tmp_path))


def test_recipe_on_onnx_source_refused(sim_bundle, tiny, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel

    from converters import passes
    from profiles import RecipeStep

    class NoopConfig(BaseModel):
        """No options."""

    monkeypatch.setattr(passes, "_REGISTRY", {})
    passes.register_pass("noop", NoopConfig)(lambda model, config, data: model)
    profile = _onnx_only("fp32").model_copy(update={"recipe": (RecipeStep(name="noop"),)})
    source = sim_bundle[0].path / "model.fp32.onnx"
    with pytest.raises(ConfigError, match="recipe passes need a torch source"):
        build_bundle(str(source), profile, tiny.data, Paths(home=tmp_path))
    assert not (tmp_path / "bundles").exists()  # refused before any work


def test_import_is_light() -> None:
    code = ("import sys, converters; heavy = {'torch', 'tensorflow', 'onnxruntime', 'onnx2tf', "
            "'onnx'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_public_api() -> None:
    assert set(converters.__all__) == {
        "Bundle", "Dataset", "LoadedModel", "Verification", "apply_recipe",
        "available_passes", "build_bundle", "bundle_id", "convert_fp16", "export_onnx",
        "export_tflite", "load_dataset", "load_model", "quantize_int8", "register_pass",
        "resolve_recipe", "synthetic_dataset"}
