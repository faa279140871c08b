"""Let one onnx2tf call convert only the TFLite files its job keeps, and skip its unread
SavedModel.

``onnx2tf.convert`` (1.28) runs TensorFlow's TFLite converter once per file it knows: float32,
float16, and — asked for int8 — dynamic-range, integer, full-integer and both int16-activation
variants, each int8 one calibrating again. A job keeps one or two of them. Measured on
EfficientNet-Lite0 (this 2-core host): the int8 call spent most of its time on the five files
nobody reads, the int16-activation ones calibrating slowest.

:func:`only_variants` wraps the ``convert`` of every converter onnx2tf creates during the block:
a call whose settings make a variant outside *keep* returns empty bytes (onnx2tf writes an empty
file, which is never read) instead of converting; every other call converts as before, so the
kept files are byte-identical to an unguarded call's. A call it cannot classify converts.

A float-only call also writes a SavedModel (``tf.saved_model.save`` of the Keras model) that
nothing reads — its TFLite files come from the concrete function — and that save walked the
Keras graph for 70 of the 81 s the float call took on EfficientNet-Lite0 (cProfile, loaded
host). With ``saved_model=False`` it is not written. An int8 call needs it (onnx2tf calibrates
from it) and writes it through ``ExportArchive``, which is fast.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["only_variants", "variant_of"]

log = logging.getLogger(__name__)


def variant_of(converter: Any) -> str | None:
    """onnx2tf's file suffix for what *converter* would make now (``float32``, ``float16``,
    ``dynamic_range_quant``, ``integer_quant``, ``full_integer_quant``,
    ``integer_quant_with_int16_act``, ``full_integer_quant_with_int16_act``), or
    ``None`` when its settings match none of them."""
    import tensorflow as tf

    ops = set(converter.target_spec.supported_ops)
    if tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 in ops:
        full = converter.inference_input_type == tf.int16
        return f"{'full_' if full else ''}integer_quant_with_int16_act"
    if getattr(converter, "representative_dataset", None) is not None:
        if tf.lite.OpsSet.TFLITE_BUILTINS_INT8 not in ops:
            return None
        io = converter.inference_input_type
        return "full_integer_quant" if io in (tf.int8, tf.uint8) else "integer_quant"
    if not converter.optimizations:
        return "float32"
    if tf.float16 in set(converter.target_spec.supported_types):
        return "float16"
    return "dynamic_range_quant"


@contextlib.contextmanager
def only_variants(keep: set[str], skipped: list[str], saved_model: bool = True
                  ) -> Iterator[None]:
    """During the block, converters from ``tf.lite.TFLiteConverter`` convert only *keep*, and
    ``tf.saved_model.save`` writes nothing unless *saved_model*; each variant not converted
    (and ``saved_model``) is appended to *skipped*."""
    import tensorflow as tf

    save = tf.saved_model.save

    def no_save(*_args: Any, **_kwargs: Any) -> None:
        skipped.append("saved_model")

    cls = tf.lite.TFLiteConverter
    names = ("from_concrete_functions", "from_saved_model", "from_keras_model")
    own = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    makers = {name: getattr(cls, name) for name in names}

    def guarded(make: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            converter = make(*args, **kwargs)
            convert = converter.convert

            def convert_kept() -> bytes:
                variant = variant_of(converter)
                if variant is not None and variant not in keep:
                    skipped.append(variant)
                    log.debug("onnx2tf: %s not converted (the job keeps %s)", variant,
                              ", ".join(sorted(keep)))
                    return b""
                return convert()

            converter.convert = convert_kept
            return converter

        return staticmethod(build)

    try:
        for name, make in makers.items():
            setattr(cls, name, guarded(make))
        if not saved_model:
            tf.saved_model.save = no_save
        yield
    finally:
        tf.saved_model.save = save
        for name in names:
            if name in own:
                setattr(cls, name, own[name])
            else:
                delattr(cls, name)
