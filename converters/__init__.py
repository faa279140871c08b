"""converters: model source → verified artifacts (ONNX fp32/int8/fp16, TFLite fp32/int8) → bundle.

Public API::

    load_model(source, input_shapes=None) -> LoadedModel
    load_dataset(path) -> Dataset
    build_bundle(source, profile, data=None, paths=None, *, progress=None, force=False,
                 input_shapes=None, board_files=None) -> Bundle
    bundle_id(...) -> str
    register_pass(name, config_cls) / apply_recipe(model, steps, dataset)

Importing this package is light: torch, onnxruntime, tensorflow and onnx2tf are imported inside
the functions that need them (tensorflow only in the TFLite converter's child process).
"""

from .bundle import Bundle, build_bundle, bundle_id
from .data import Dataset, load_dataset, synthetic_dataset
from .export_onnx import export_onnx
from .export_tflite import export_tflite
from .load import LoadedModel, load_model
from .passes import apply_recipe, available_passes, register_pass, resolve_recipe
from .quantize_fp16 import convert_fp16
from .quantize_onnx import quantize_int8
from .verify import Verification

__all__ = [
    "Bundle",
    "Dataset",
    "LoadedModel",
    "Verification",
    "apply_recipe",
    "available_passes",
    "build_bundle",
    "bundle_id",
    "convert_fp16",
    "export_onnx",
    "export_tflite",
    "load_dataset",
    "load_model",
    "quantize_int8",
    "register_pass",
    "resolve_recipe",
    "synthetic_dataset",
]
