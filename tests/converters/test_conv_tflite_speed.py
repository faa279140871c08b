"""The TFLite route's time savers: onnx2tf converts only the files a job keeps, and the float
call's fp16 file is kept for the int8 artifact's fp16 fallback (real TensorFlow, real onnx2tf)."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from converters._onnx2tf_only import only_variants, variant_of


def _head() -> object:
    import tensorflow as tf

    weights = tf.constant(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def head(x: object) -> object:
        return tf.nn.relu(tf.matmul(x, weights))

    return head.get_concrete_function()


def _converter(fn: object = None) -> object:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_concrete_functions([fn or _head()])


def _representative() -> object:
    for _ in range(4):
        yield [np.ones((1, 8), np.float32)]


def test_variant_of_names_each_onnx2tf_setting() -> None:
    import tensorflow as tf

    conv = _converter()
    assert variant_of(conv) == "float32"
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    assert variant_of(conv) == "float16"
    conv.target_spec.supported_types = []
    assert variant_of(conv) == "dynamic_range_quant"
    conv.representative_dataset = _representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    assert variant_of(conv) == "integer_quant"
    conv.inference_input_type = tf.int8
    assert variant_of(conv) == "full_integer_quant"
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    assert variant_of(conv) == "full_integer_quant_with_int16_act"
    conv.inference_input_type = tf.float32
    assert variant_of(conv) == "integer_quant_with_int16_act"


def test_kept_files_are_byte_identical_and_the_rest_is_skipped(tmp_path: Path) -> None:
    import tensorflow as tf

    head = _head()
    plain = _converter(head).convert()
    skipped: list[str] = []
    with only_variants({"float32"}, skipped, saved_model=False):
        conv = _converter(head)  # made through the guard
        kept = conv.convert()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        assert conv.convert() == b""
        tf.saved_model.save(tf.Module(), str(tmp_path / "sm"))
    assert kept == plain and skipped == ["float16", "saved_model"]
    assert not (tmp_path / "sm").exists()
    tf.saved_model.save(tf.Module(), str(tmp_path / "sm"))  # restored after the block
    assert (tmp_path / "sm" / "saved_model.pb").exists()
    after = _converter(head)
    assert inspect.ismethod(after.convert) and after.convert() == plain  # the guard is gone


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """fp32 + int8 of a small conv ONNX, converted next to it (one onnx2tf child)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_quant_tflite import _conv_onnx

    from converters.export_tflite import export_tflite_each

    work = tmp_path_factory.mktemp("spare")
    _conv_onnx(work / "model.fp32.onnx")
    calib = {"x": np.random.default_rng(1).normal(0, 1, (16, 1, 8, 8)).astype(np.float32)}
    made = export_tflite_each(work / "model.fp32.onnx", work, ["int8", "fp32"], calib)
    return work, calib, made


def test_fp16_fallback_takes_the_float_calls_file(converted, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from converters.export_tflite import export_tflite

    work, calib, made = converted
    assert {"fp32", "int8"} <= set(made) and (work / "model.fp16.tflite.spare").is_file()
    other = {"x": calib["x"] + 1.0}  # other calibration data: not the same conversion
    from converters._tflite_spare import take_spare

    assert take_spare(work / "model.fp32.onnx", tmp_path / "x.tflite", other) is None
    info = export_tflite(work / "model.fp32.onnx", tmp_path, ["fp16"], calib)
    assert "made_by" in info["fp16"] and info["fp16"]["variant"] == "float16"
    assert not (work / "model.fp16.tflite.spare").exists()  # taken, once
    interp = Interpreter(model_path=str(tmp_path / "model.fp16.tflite"))
    assert any(t["dtype"] == np.float16 for t in interp.get_tensor_details())
