"""Data in every form (.npz, .npy directory, module:function) and a .tflite source as is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import build_bundle, load_dataset, load_model
from core.errors import ConfigError
from profiles import load_profile

TFLITE_FP32 = load_profile("sim").model_copy(update={"artifacts": load_profile("sim").artifacts[2:3]})

_MAKE_TFLITE = """
import sys, numpy as np, tensorflow as tf
w = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
class M(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32, name="features")])
    def __call__(self, features):
        return tf.matmul(features, w)
m = M()
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
open(sys.argv[1], "wb").write(conv.convert())
np.save(sys.argv[2], w)
"""


def make_arrays() -> dict[str, np.ndarray]:
    """A callable data source (module:function form)."""
    rng = np.random.default_rng(1)
    return {"image": rng.random((6, 1, 28, 28), dtype=np.float32),
            "labels": np.arange(6, dtype=np.int64) % 10}


def not_a_dict() -> list[int]:
    """A callable data source returning the wrong type."""
    return [1, 2]


def test_npy_directory_with_labels_loads(tmp_path: Path) -> None:
    np.save(tmp_path / "input_ids.npy", np.ones((5, 7), np.int64))
    np.save(tmp_path / "attention_mask.npy", np.ones((5, 7), np.int64))
    np.save(tmp_path / "labels.npy", np.arange(5))
    data = load_dataset(tmp_path)
    assert sorted(data.names) == ["attention_mask", "input_ids"]
    assert data.inputs["input_ids"].dtype == np.int64 and data.samples == 5
    assert data.labels is not None and data.sha256 and data.ref == str(tmp_path)


def test_empty_npy_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \.npy files; save one <input name>\.npy"):
        load_dataset(tmp_path)


def test_callable_data_loads_and_is_fingerprinted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    data = load_dataset("test_inputs_data:make_arrays")
    again = load_dataset("test_inputs_data:make_arrays")
    assert data.names == ["image"] and data.samples == 6 and list(data.labels) == [0, 1, 2, 3, 4, 5]
    assert data.sha256 == again.sha256 and not data.synthetic
    with pytest.raises(ConfigError, match=r"returned list; return a dict"):
        load_dataset("test_inputs_data:not_a_dict")
    with pytest.raises(ConfigError, match=r"has no callable 'nope'"):
        load_dataset("test_inputs_data:nope")


def test_tflite_source_ships_as_is_and_is_verified(tmp_path: Path, home) -> None:
    model, weights = tmp_path / "linear.tflite", tmp_path / "w.npy"
    subprocess.run([sys.executable, "-c", _MAKE_TFLITE, str(model), str(weights)], check=True,
                   capture_output=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                          "PATH": "/usr/bin:/bin"})
    x = np.random.default_rng(2).random((20, 8), dtype=np.float32)
    labels = (x @ np.load(weights)).argmax(1).astype(np.int64)
    np.savez(tmp_path / "d.npz", features=x, labels=labels)
    loaded = load_model(str(model))
    assert loaded.kind == "tflite" and loaded.input_names == ("features",)
    bundle = build_bundle(str(model), TFLITE_FP32, tmp_path / "d.npz", home)
    (art,) = bundle.manifest["artifacts"]
    assert art["key"] == "tflite-fp32" and art["converter"]["method"] == "source TFLite shipped as is"
    assert (bundle.path / "model.fp32.tflite").read_bytes() == model.read_bytes()
    assert art["verification"]["accuracy"] == 1.0 and art["inputs"][0]["transpose"] is None
    assert bundle.manifest["source"]["kind"] == "tflite"
