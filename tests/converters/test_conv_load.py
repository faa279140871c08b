"""converters.load: sources, fingerprints and one-line ModelErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters import load_model
from converters._util import file_sha256
from core.errors import ModelError


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt2"
    with pytest.raises(ModelError, match=r"model file .*nope\.pt2 does not exist"):
        load_model(str(missing))


def test_corrupt_onnx_says_reexport(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage-not-protobuf" * 10)
    with pytest.raises(ModelError, match=r"^model\.onnx is not a valid ONNX file \(.*\); re-export it$"):
        load_model(str(bad))


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported model source"):
        load_model(str(tmp_path / "weights.h5"))


@pytest.mark.parametrize(("ref", "message"), [
    ("no_such_pkg.models:make", "cannot import 'no_such_pkg.models'"),
    ("conv_models:missing", "has no callable 'missing'"),
    ("conv_models:not_a_module", "returned dict, not a torch.nn.Module"),
    ("conv_models:raises", r"raised RuntimeError: factory exploded"),
])
def test_bad_factory(factory_source: str, ref: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(ref)


def test_pt2_source_fingerprint_is_file_sha(tiny) -> None:
    loaded = load_model(str(tiny.pt2))
    assert (loaded.kind, loaded.sha256) == ("pt2", file_sha256(tiny.pt2))
    assert not loaded.model.training


def test_factory_fingerprint_is_weights_and_class(factory_source: str) -> None:
    import torch

    a, b = load_model(factory_source), load_model(factory_source)
    assert a.kind == "module" and a.sha256 == b.sha256
    with torch.no_grad():
        b.model.head.bias.add_(1.0)
    from converters.load import _state_sha256

    assert _state_sha256(b.model) != a.sha256
    assert not a.model.training


@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:DeprecationWarning")
def test_torchscript_source(tmp_path: Path, factory_source: str) -> None:
    import torch

    module = load_model(factory_source).model
    torch.jit.save(torch.jit.trace(module, torch.zeros(1, 1, 28, 28)), tmp_path / "m.pt")
    loaded = load_model(str(tmp_path / "m.pt"))
    assert loaded.kind == "torchscript"
    assert loaded.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_onnx_source_records_inputs(sim_bundle) -> None:
    bundle, _ = sim_bundle
    loaded = load_model(str(bundle.path / "model.fp32.onnx"))
    assert loaded.input_names == ("input",)
    assert loaded.input_shapes == {"input": (1, 1, 28, 28)}
    assert loaded.output_names == ("logits",)
