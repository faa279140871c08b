"""ONNX fp32 → int8 (static QDQ or dynamic) and fp16, with onnxruntime's own tools.

:class:`OnnxQuantizer` pre-processes the fp32 model once (shape inference + graph optimisation,
``quant_pre_process``, so the quantizer sees fused Conv/Gemm nodes) and then quantizes it as often
as asked with different :class:`OnnxQuantOptions` — the fallbacks and the sensitivity measurement
re-quantize the same graph. Static int8 is calibrated on real samples (``quantize_static`` + a
:class:`CalibrationDataReader` feeding one sample at a time); the calibrated tensor ranges are
cached per calibration method, so a re-quantization does not calibrate again. Dynamic int8 uses
``quantize_dynamic`` (int8 weights, activations quantized at run time). fp16 uses
``onnxruntime.transformers.float16`` with float32 inputs/outputs kept (``keep_io_types``).

Every quantized graph is loaded in onnxruntime right after quantizing (cheap, and before any
expensive verification or conversion): models below opset 13 are upgraded first (per-channel QDQ
needs ``DequantizeLinear(axis=…)``), and when a graph still does not load the next variant is
tried — per-tensor, QOperator, dynamic int8 inside If/Loop subgraphs (when the weights sit there:
:mod:`converters.quantize_subgraphs`), the op types onnxruntime refused kept in float — each
recorded in the info's ``tried`` and the one taken in ``variant``. A model whose weights sit in
the branches of an ``If`` on a setting the data holds at one value (Silero VAD's sample rate)
has that branch taken first (:mod:`converters.branch_fold`), so the static quantizers reach them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConversionError

from ._calib_memo import ranges_key, remember, restore
from ._util import one_line, op_hint
from .branch_fold import Branches, branch_settings, take_branches
from .calibration_reader import CalibrationReader, activation_bytes, calibration_stride
from .int8_options import ACTIVATION_QTYPES, CALIBRATION_METHODS, OnnxQuantOptions
from .quantize_subgraphs import all_op_types, lift_subgraph_constants, subgraph_weight_count
from .steps import record

__all__ = ["KEEP_FAILING", "SUBGRAPHS", "WEIGHT_OPS", "OnnxQuantizer", "quantize_int8"]

log = logging.getLogger(__name__)

KEEP_FAILING = "keep-float"
"""The last variant: as configured, with the op types onnxruntime refused to load kept float
(recorded as ``keep-float Conv, MatMul``)."""
SUBGRAPHS = "dynamic, subgraphs"
"""The variant for weights inside If/Loop subgraphs (:mod:`converters.quantize_subgraphs`)."""
KEEP_ROUNDS = 4
"""How often the keep-float variant widens (each load error may name another op type)."""
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "LSTM", "GRU")
"""Node types the sensitivity measurement (and ``exclude: auto``) considers: those with weights."""
MIN_PER_CHANNEL_OPSET = 13
"""``DequantizeLinear`` takes ``axis`` (per-channel weights) from this opset on."""
_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
             "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul",
             "QGemm", "QAttention", "DynamicQuantizeLSTM"}


class OnnxQuantizer:
    """Quantize one fp32 ONNX model repeatedly; temp files live in *workdir*.

    A model below opset 13 is upgraded first (``onnx.version_converter``): per-channel QDQ
    writes ``DequantizeLinear(axis=…)``, which onnxruntime only loads from opset 13.
    """

    def __init__(self, fp32: Path, calibration: dict[str, np.ndarray], workdir: Path) -> None:
        self.fp32, self.calibration, self.workdir = fp32, calibration, workdir
        upgraded, self.cleanup = _upgrade(fp32, workdir / "opset.onnx")
        branches = branch_settings(upgraded, calibration)
        self.fixed_inputs = branches.values
        """Inputs made constants so the static quantizers reach the weights in the branches
        they select (:mod:`converters.branch_fold`): name → the one value the artifact serves."""
        if self.fixed_inputs:
            upgraded = self._take_branches(upgraded, workdir / "branches.onnx", branches)
            calibration = {k: v for k, v in calibration.items() if k not in self.fixed_inputs}
            self.calibration = calibration
        self.source = _preprocess(upgraded, workdir / "pre.onnx")
        self.samples = len(next(iter(calibration.values())))
        self.subgraph_weights = subgraph_weight_count(self.source)
        """Weight nodes inside If/Loop/Scan subgraphs (the static quantizers skip them)."""
        self._ranges: dict[str, tuple[str, ...]] = {}  # method → key of its shared ranges

    def _take_branches(self, model: Path, out: Path, branches: Branches) -> Path:
        """*model* with *branches* taken (written to *out*); *model* itself, with the error
        recorded as a clean-up step, when that fails (then only dynamic int8 reaches the
        branches' weights)."""
        try:
            self.cleanup += take_branches(model, out, branches)
        except ConversionError as exc:
            self.cleanup.append({"step": "constant inputs", "changed": False,
                                 "error": one_line(str(exc))})
            self.fixed_inputs = {}
            return model
        return out

    def weight_nodes(self) -> list[str]:
        """Names of the nodes with weights, in graph order (candidates to keep in float)."""
        import onnx

        graph = onnx.load(str(self.source)).graph
        return [n.name for n in graph.node if n.op_type in WEIGHT_OPS and n.name]

    def quantize(self, options: OnnxQuantOptions, out: Path,
                 only: list[str] | None = None) -> dict[str, Any]:
        """Write an int8 model that onnxruntime loads to *out* (only the nodes *only*, when
        given); return how. Variants are tried in order until one loads (:func:`variants`);
        each try is recorded in ``tried``. Raises :class:`ConversionError` (``tool``
        ``onnxruntime``, the last real error as ``cause``) when none does."""
        tried: list[dict[str, Any]] = []
        failing: set[str] = set()  # op types that load errors named
        unreachable = None if options.subgraphs else self._no_reachable_weights
        if unreachable and options.symmetric:  # runner: tensorrt — it builds Q/DQ int8 only
            raise ConversionError(f"{unreachable}; dynamic int8, the one that reaches them, has "
                                  "no zero-point-0 Q/DQ activations (TensorRT builds int8 Q/DQ "
                                  "only)", stage="quantize", tool="onnxruntime",
                                  cause=unreachable)
        if unreachable and (options.op_types or options.exclude or options.activations == "int16"):
            raise ConversionError(f"{unreachable}; the one int8 it allows is dynamic with "
                                  "subgraphs", stage="quantize", tool="onnxruntime",
                                  cause=unreachable)
        variants = _variants(options, self.subgraph_weights > 0)
        if unreachable:  # Q/DQ on the outputs only would be no int8: subgraphs or nothing
            tried.append({"variant": "as configured", "stage": "quantize", "error": unreachable})
            variants = [(n, v) for n, v in variants if v.subgraphs]
        for name, variant in variants:
            if name == KEEP_FAILING:
                return self._keep_failing_float(variant, out, only, tried, failing)
            problem = self._try(variant, out, only)
            if problem is None:
                return self._info(variant, name, tried)
            failing |= self._failing(out, problem)
            tried.append({"variant": name, **problem})
        raise self._error(tried)

    @functools.cached_property
    def _no_reachable_weights(self) -> str | None:
        return self._reaches_no_weights()

    def _reaches_no_weights(self) -> str | None:
        """Why the quantizers cannot make this model int8 without ``EnableSubgraph`` (``None``
        when they can): all its weight nodes sit in If/Loop/Scan subgraphs, which they skip, so
        the "int8" model would be the float one with Q/DQ on its outputs (Silero VAD: its whole
        network is an ``If`` on the sample rate; the int8 rounding of its state output alone
        dropped the state's cosine to 0.80). Only the dynamic-with-subgraphs variant is tried."""
        if not self.subgraph_weights or self.weight_nodes():
            return None
        return (f"the quantizer reaches none of the model's {self.subgraph_weights} weight "
                "nodes outside If/Loop subgraphs: only its outputs would be int8")

    def _keep_failing_float(self, options: OnnxQuantOptions, out: Path, only: list[str] | None,
                            tried: list[dict[str, Any]], failing: set[str]) -> dict[str, Any]:
        """As configured, with the op types load errors named kept float; again while each
        try names new ones (at most :data:`KEEP_ROUNDS` times)."""
        import onnx

        nodes = onnx.load(str(self.source)).graph.node
        for _ in range(KEEP_ROUNDS):
            if not failing:
                break
            name = f"keep-float {', '.join(sorted(failing))}"
            keep = tuple(n.name for n in nodes if n.op_type in failing and n.name)
            variant = options.with_(exclude=tuple(dict.fromkeys((*options.exclude, *keep))))
            problem = self._try(variant, out, only)
            if problem is None:
                return self._info(variant, name, tried)
            new = self._failing(out, problem) - failing
            tried.append({"variant": name, **problem})
            if not new:
                break
            failing = failing | new
        raise self._error(tried)

    def _try(self, options: OnnxQuantOptions, out: Path,
             only: list[str] | None) -> dict[str, str] | None:
        """``None`` when *options* made a graph that loads, else ``{stage, error}``."""
        try:
            if options.mode == "dynamic":
                self._dynamic(options, out, only)
            else:
                self._static(options, out, only)
        except Exception as exc:  # onnxruntime raises many types for unsupported graphs
            return {"stage": "quantize", "error": one_line(exc, limit=400)}
        return _load_problem(out)

    def _info(self, options: OnnxQuantOptions, variant: str,
              tried: list[dict[str, Any]]) -> dict[str, Any]:
        method = ("quantize_dynamic" if options.mode == "dynamic" else
                  f"quantize_static {options.format}") + (
            " per-channel" if options.per_channel else " per-tensor") + (
            " with subgraphs" if options.subgraphs else "")
        info = {"tool": "onnxruntime.quantization", "method": method, "weights": "QInt8",
                "activations": ACTIVATION_QTYPES.get(options.activations, options.activations),
                "calibration_samples": self.samples if options.mode == "static" else 0,
                "preprocessed": self.source != self.fp32, "options": options.to_dict(),
                "variant": variant, "tried": tried}
        if self.cleanup:
            info["cleanup"] = self.cleanup
        if self.fixed_inputs:  # inputs the artifact no longer takes: the values it serves
            info["fixed_inputs"] = self.fixed_inputs
        return info

    def _failing(self, out: Path, problem: dict[str, str]) -> set[str]:
        """The op types next to the node a load error names (recorded in *problem*)."""
        if problem["stage"] != "load":
            return set()
        types = _types_at(out, problem["error"]) - {"QuantizeLinear", "DequantizeLinear"}
        if types:
            problem["op_types"] = ", ".join(sorted(types))
        return types

    def _error(self, tried: list[dict[str, Any]]) -> ConversionError:
        last = tried[-1]["error"]
        names = ", ".join(t["variant"] for t in tried)
        stage = "load" if any(t["stage"] == "load" for t in tried) else "quantize"
        what = "would not load in onnxruntime" if stage == "load" else "quantization failed"
        where = (f" ({self.subgraph_weights} weight nodes sit in If/Loop subgraphs, which "
                 "onnxruntime's static quantizer skips)" if self.subgraph_weights else "")
        return ConversionError(
            f"ONNX int8 {what}{op_hint(last, self.source)}{where} ({names} tried): {last}; drop "
            "onnx-int8 from the profile or use precision fp16", stage=stage, tool="onnxruntime",
            cause=last, tried=[t["variant"] for t in tried])

    @functools.cached_property
    def _sample_bytes(self) -> int | None:
        """:func:`activation_bytes` of the source on the first calibration sample."""
        return activation_bytes(self.source, self._reader().first())

    def _reader(self) -> CalibrationReader:
        """A fresh reader of the calibration samples (onnxruntime consumes it)."""
        return CalibrationReader(self.calibration, self.source)

    def _static(self, options: OnnxQuantOptions, out: Path, only: list[str] | None) -> None:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        percentile = options.calibration == "percentile"
        extra: dict[str, Any] = {"CalibPercentile": options.percentile} if percentile else {}
        if options.symmetric:
            extra["ActivationSymmetric"] = True
        cache = self.workdir / f"calib-{options.calibration}-{options.percentile}.json"
        method = f"{options.calibration}-{options.percentile}"
        if method not in self._ranges:
            self._ranges[method] = ranges_key(self.source, self.calibration, method)
        memo = self._ranges[method]
        restore(memo, cache)  # the ranges another quantizer of this model calibrated
        if cache.exists():  # onnxruntime reads them instead of calibrating: say so in timings
            record("calibrate (ranges reused)", 0.0)
        else:
            extra["CalibStridedMinMax"] = calibration_stride(self.samples, self._sample_bytes)
        # onnxruntime's histogram calibrators print their progress on stdout, which is the
        # JSON document under --json: kept off it
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(self.source), str(out), self._reader(),
                            quant_format=getattr(QuantFormat, options.format),
                            per_channel=options.per_channel, weight_type=QuantType.QInt8,
                            activation_type=getattr(QuantType,
                                                    ACTIVATION_QTYPES[options.activations]),
                            calibrate_method=getattr(CalibrationMethod,
                                                     CALIBRATION_METHODS[options.calibration]),
                            nodes_to_exclude=list(options.exclude) or None, nodes_to_quantize=only,
                            op_types_to_quantize=list(options.op_types) or None,
                            extra_options=extra, calibration_cache_path=str(cache))
        remember(memo, cache)

    def _dynamic(self, options: OnnxQuantOptions, out: Path, only: list[str] | None) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = self._without_value_info()
        if options.subgraphs:  # subgraph weights are Constant nodes; the quantizer wants inits
            source = self.workdir / "pre-subgraphs.onnx"
            if not source.exists():
                lift_subgraph_constants(self._without_value_info(), source)
        quantize_dynamic(str(source), str(out), per_channel=options.per_channel,
                         weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(options.exclude) or None,
                         nodes_to_quantize=only,
                         extra_options={"EnableSubgraph": True} if options.subgraphs else None)

    def _without_value_info(self) -> Path:
        """The source without intermediate shapes: ``quantize_dynamic`` turns ``Gemm(transB=1)``
        into ``MatMulInteger`` and then trips over the stale shapes (measured: ORT 1.31)."""
        import onnx

        path = self.workdir / "pre-dynamic.onnx"
        if not path.exists():
            model = onnx.load(str(self.source))
            del model.graph.value_info[:]
            onnx.save(model, str(path))
        return path


def _variants(options: OnnxQuantOptions,
              subgraphs: bool = False) -> list[tuple[str, OnnxQuantOptions]]:
    """The variants tried in order: as configured, per-tensor (when per-channel), QOperator
    (static only), dynamic with subgraphs (when weights sit in If/Loop subgraphs), then as
    configured with the op types load errors named kept in float
    (:meth:`OnnxQuantizer._keep_failing_float`)."""
    out = [("as configured", options)]
    if options.per_channel:
        out.append(("per-tensor", options.with_(per_channel=False)))
    if options.mode == "static" and options.format == "QDQ":
        out.append(("QOperator", options.with_(format="QOperator")))
    if subgraphs and not options.subgraphs:
        out.append((SUBGRAPHS, options.with_(mode="dynamic", calibration="none",
                                             activations="dynamic", subgraphs=True)))
    out.append((KEEP_FAILING, options))
    return out


def quantize_int8(fp32: Path, out: Path, calibration: dict[str, np.ndarray],
                  options: OnnxQuantOptions | None = None) -> dict[str, Any]:
    """Write an int8 model of *fp32* to *out* (static QDQ per-channel by default); return how."""
    with tempfile.TemporaryDirectory(prefix="edgeship-q-") as tmp:
        quantizer = OnnxQuantizer(fp32, calibration, Path(tmp))
        info = quantizer.quantize(options or OnnxQuantOptions(), out)
    log.info("quantized %s -> %s (%s)", fp32.name, out.name, info["method"])
    return info


def _preprocess(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
        return out
    except Exception as exc:  # optional step: quantize the raw model instead
        log.warning("quant_pre_process failed (%s); quantizing the model as exported", one_line(exc))
        return fp32


def _upgrade(fp32: Path, out: Path) -> tuple[Path, list[dict[str, Any]]]:
    """*fp32* at opset ≥ 13 (written to *out*) and the clean-up steps; unchanged when it is
    already, or when the upgrade fails (then per-tensor is the variant that loads)."""
    import onnx

    from .onnx_cleanup import clean_onnx, default_opset

    opset = default_opset(onnx.load(str(fp32), load_external_data=False))
    if opset is None or opset >= MIN_PER_CHANNEL_OPSET:
        return fp32, []
    result = clean_onnx(fp32, out, slim=False, min_opset=MIN_PER_CHANNEL_OPSET)
    return (out if result.route() else fp32), result.steps


def _load_problem(path: Path) -> dict[str, str] | None:
    """``None`` when onnxruntime loads *path* and it holds int8 nodes, else ``{stage, error}``."""
    import onnx
    import onnxruntime as ort

    ops = all_op_types(onnx.load(str(path), load_external_data=False).graph)
    if not ops & _INT8_OPS:
        return {"stage": "quantize", "error": "no node was quantized (the graph stayed float)"}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's InvalidGraph, NotImplemented, Fail, ...
        return {"stage": "load", "error": one_line(exc, limit=400)}
    return None


def _types_at(path: Path, error: str) -> set[str]:
    """Op types at the node a load error names (``In Node, ("name", Op…``), looking through
    Q/DQ nodes to the operators they feed."""
    import onnx

    found = re.search(r'[Nn]ode[,:]? \(?"?([^",)]+)"?', error)
    if not found:
        return set()
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    start = [n for n in nodes if n.name == found.group(1)]
    types, seen = set(), set()
    while start:
        node = start.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        types.add(node.op_type)
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            start.extend(c for o in node.output for c in consumers.get(o, []))
    return types
