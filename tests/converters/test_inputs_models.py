"""Any real model in: two inputs with int64 token ids + mask, fixed dynamic axes, .tflite sources."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from converters import build_bundle, load_model
from converters.load import parse_input_shapes
from core.errors import ConfigError
from profiles import load_profile

ONNX_ONLY = load_profile("sim").model_copy(update={"artifacts": (
    load_profile("sim").artifacts[0], load_profile("sim").artifacts[1])})
SEQ, VOCAB = 12, 50


class BagModel(nn.Module):
    """Token ids (int64) + attention mask → 4 logits: masked mean of embeddings, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits."""
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def bag_model() -> nn.Module:
    """Seeded factory source."""
    torch.manual_seed(0)
    return BagModel()


def bag_data() -> dict[str, np.ndarray]:
    """Callable data source: ids, masks and the model's own labels (so accuracy is 1.0)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, (64, SEQ)).astype(np.int64)
    mask = (np.arange(SEQ)[None, :] < rng.integers(3, SEQ + 1, (64, 1))).astype(np.int64)
    with torch.no_grad():
        labels = bag_model()(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(1).numpy()
    return {"input_ids": ids, "attention_mask": mask, "labels": labels.astype(np.int64)}


@pytest.fixture(scope="module")
def bag_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bag model as ONNX with dynamic batch and sequence axes."""
    path = tmp_path_factory.mktemp("bag") / "bag.onnx"
    ids, mask = torch.zeros(1, SEQ, dtype=torch.long), torch.ones(1, SEQ, dtype=torch.long)
    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(bag_model(), (ids, mask), str(path), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes})
    return path


def test_two_input_int64_factory_converts_fp32_and_int8(home, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    bundle = build_bundle("test_inputs_models:bag_model", ONNX_ONLY,
                          "test_inputs_models:bag_data", home)
    arts = {a["key"]: a for a in bundle.manifest["artifacts"]}
    assert set(arts) == {"onnx-fp32", "onnx-int8"}
    for art in arts.values():
        assert [i["name"] for i in art["inputs"]] == ["input_ids", "attention_mask"]
        assert {i["dtype"] for i in art["inputs"]} == {"int64"}
        assert all(i["transpose"] is None for i in art["inputs"])
        assert art["verification"]["passed"] and art["verification"]["accuracy"] is not None
    assert arts["onnx-fp32"]["verification"]["accuracy"] == 1.0
    assert bundle.manifest["data"]["ref"] == "test_inputs_models:bag_data"


def test_input_shape_fixes_dynamic_onnx_axes(bag_onnx: Path, home,
                                              caplog: pytest.LogCaptureFixture) -> None:
    shapes = parse_input_shapes(["input_ids=1x8", "attention_mask=1x8"])
    loaded = load_model(str(bag_onnx), shapes)
    assert loaded.input_shapes == {"input_ids": (1, 8), "attention_mask": (1, 8)}
    with caplog.at_level(logging.WARNING, logger="converters"):
        bundle = build_bundle(str(bag_onnx), ONNX_ONLY, None, home, input_shapes=shapes)
    assert "synthetic" in caplog.text
    import onnx

    fp32 = onnx.load(str(bundle.path / "model.fp32.onnx"))
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in fp32.graph.input]
    assert dims == [[1, 8], [1, 8]]
    art = bundle.manifest["artifacts"][0]
    assert art["converter"]["input_shapes_fixed"] == {"input_ids": [1, 8], "attention_mask": [1, 8]}
    assert bundle.manifest["data"]["synthetic"] is True
    assert all(a["verification"]["accuracy"] is None for a in bundle.manifest["artifacts"])


def test_dynamic_onnx_without_shapes_or_data_says_what_to_do(bag_onnx: Path, home) -> None:
    with pytest.raises(ConfigError, match=r"--input-shape input_ids=1x"):
        build_bundle(str(bag_onnx), ONNX_ONLY, None, home)


@pytest.mark.parametrize("spec, message", [
    (["input_ids=1x0"], r"^bad --input-shape 'input_ids=1x0'; write NAME=DIMSxDIMS"),
    (["input_ids:1x8"], r"^bad --input-shape"),
    (["a=1", "a=2"], r"gives 'a' twice"),
])
def test_bad_input_shape_spec_is_one_line(spec: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_input_shapes(spec)
    assert "\n" not in str(err.value)


def test_input_shape_against_the_model_names_both_shapes(bag_onnx: Path) -> None:
    with pytest.raises(ConfigError, match=r"ids=1x8x2 does not fit .*\[-1, -1\]") as err:
        load_model(str(bag_onnx), {"input_ids": (1, 8, 2)})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"names tokens, .*inputs are input_ids, attention_mask"):
        load_model(str(bag_onnx), {"tokens": (1, 8)})


def test_data_shape_mismatch_names_both_shapes(factory_source: str, home, tmp_path: Path) -> None:
    import onnx
    from conv_models import tiny_cnn

    onnx_path = tmp_path / "cnn.onnx"
    torch.onnx.export(tiny_cnn(), (torch.zeros(1, 1, 28, 28),), str(onnx_path), dynamo=False,
                      opset_version=17, input_names=["image"], output_names=["logits"])
    onnx.checker.check_model(str(onnx_path))
    np.savez(tmp_path / "bad.npz", image=np.zeros((4, 1, 14, 14), np.float32))
    with pytest.raises(ConfigError, match=r"\(1, 14, 14\) but the model expects \[1, 1, 28, 28\]"):
        build_bundle(str(onnx_path), ONNX_ONLY, tmp_path / "bad.npz", home)


def test_cli_bad_input_shape_exits_2_with_one_line(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("edgeship")
    proc = subprocess.run([str(exe), "convert", "--profile", "sim", "--model", "x.onnx",
                           "--input-shape", "input=1xbad"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad --input-shape 'input=1xbad'" in lines[0]


def test_input_shapes_onnxruntime_refuses_keep_the_dynamic_graph(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """silero VAD: onnx's shape inference accepted the fixed shapes, onnxruntime's inference in
    an If branch did not ("LSTM: first input tensor must have rank 3"): the fp32 artifact did not
    load. The dynamic graph is kept, and the manifest says why."""
    import onnx
    from onnx import TensorProto, helper

    import converters._shapes as shapes_mod

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    original = path.read_bytes()
    monkeypatch.setattr(shapes_mod, "_ort_refuses", lambda p: "LSTM: rank 3 expected")
    fixed = shapes_mod.fix_onnx_input_shapes(path, {"x": (1, 4)})
    assert path.read_bytes() == original
    assert fixed == {"kept_dynamic": "LSTM: rank 3 expected", "x": [1, 4]}
    monkeypatch.undo()
    assert shapes_mod.fix_onnx_input_shapes(path, {"x": (1, 4)}) == {"x": [1, 4]}
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
