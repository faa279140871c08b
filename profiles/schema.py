"""The device-profile schema: what a board class asks of the converters, runtime and profiler.

A profile is parsed once, at the boundary, into frozen pydantic models with ``extra="forbid"``;
an unknown key or a bad value raises :class:`~core.errors.ConfigError` naming the file, the
field and the allowed values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Artifact",
    "Budgets",
    "Fidelity",
    "OUTPUT_KINDS",
    "Profile",
    "ProfilingOptions",
    "Quantization",
    "RecipeStep",
    "RuntimeOptions",
    "FORMATS",
    "PRECISIONS",
]

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_KINDS = ("classes", "boxes", "regression", "map", "embedding", "other", "state")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantization(_Strict):
    """How an int8 artifact is quantized (``artifacts[].quantization``); ``None`` = format default.

    ONNX: ``mode`` static (QDQ, calibrated with ``calibration``, ``activations`` type — unset: the
    board CPU's fast onnxruntime kernel, uint8 on x86_64 and int8 on ARM) or dynamic
    (``quantize_dynamic``: int8 weights, activations quantized at run time); ``symmetric``: int8
    activations with zero point 0 (TensorRT's rule; set for ``runner: tensorrt``); ``exclude`` keeps the
    named nodes in float, or ``auto`` keeps the ``keep_float`` most sensitive ones (measured).
    TFLite: ``mode`` static (full-integer, ``io`` int8 / uint8 / float32) or dynamic (dynamic-range:
    int8 weights, float I/O). ``fallback``: when the artifact cannot be made or fails its gate, try the
    int8 remedies (per-channel weights, keeping the most sensitive layers in float — ONNX
    only —, int16 activations, dynamic int8 — TFLite; ONNX for MatMul-heavy models —; for
    ``runner: tensorrt`` only those TensorRT builds), then fp16;
    ``fallback_fp16: false`` forbids that last step: an int8 artifact that no int8 remedy rescues
    is left out of the bundle with its reason instead of being delivered as fp16 (an fp16
    fallback is always named for what it is: ``<format>-fp16``, ``model.fp16.<format>``).
    """

    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = True
    calibration: Literal["minmax", "entropy", "percentile"] | None = None
    percentile: float = Field(default=99.999, gt=90, le=100)
    activations: Literal["int8", "uint8"] | None = None
    symmetric: bool = False
    """int8 activations with zero point 0; TensorRT builds Q/DQ only so (``runner: tensorrt``
    sets it)."""
    io: Literal["int8", "uint8", "float32"] | None = None
    exclude: Literal["auto"] | tuple[str, ...] = ()
    keep_float: int = Field(default=0, ge=0, le=1000)
    fallback: bool = True
    fallback_fp16: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> "Quantization":
        if self.mode == "dynamic":
            given = [n for n in ("calibration", "activations", "io")
                     if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for mode: static (dynamic "
                                 "quantization has no calibration); remove it")
        if self.exclude == "auto" and self.keep_float < 1:
            raise ValueError("exclude: auto needs keep_float: N (how many layers stay float)")
        if self.keep_float and self.exclude != "auto":
            raise ValueError("keep_float needs exclude: auto (or list node names in exclude)")
        return self


_ONNX_ONLY = ("calibration", "activations", "symmetric", "exclude", "keep_float")


class Artifact(_Strict):
    """One artifact the profile wants built: a format at a precision (int8: how, optionally).

    An artifact that cannot be built, loaded or verified is left out of the bundle with its
    reason and the others still ship; ``required: true`` makes its failure fail the whole bundle
    (an fp16 delivered in place of a required int8 does not count as the int8).
    """

    format: Literal["onnx", "tflite"]
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    quantization: Quantization | None = None
    required: bool = False
    runner: Literal["auto", "tensorrt"] = Field(
        default="auto", description="tensorrt: build a TensorRT engine on the board (ONNX only)")

    @model_validator(mode="after")
    def _quantization_fits(self) -> "Artifact":
        if self.runner == "tensorrt" and self.format != "onnx":
            raise ValueError("runner: tensorrt builds engines from ONNX artifacts only")
        q = self.quantization
        if q is None:
            return self
        if self.precision != "int8":
            raise ValueError(f"quantization options apply to precision int8, not {self.precision}")
        if self.runner == "tensorrt" and (q.activations == "uint8" or q.mode == "dynamic"):
            raise ValueError("runner: tensorrt builds static int8 Q/DQ with int8 activations "
                             "only; remove activations: uint8 / mode: dynamic")
        fields = q.model_fields_set
        wrong = [n for n in _ONNX_ONLY if n in fields] if self.format == "tflite" else (
            ["io"] if "io" in fields else [])
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not an option for {self.format} artifacts; "
                             "remove it")
        return self

    @property
    def key(self) -> str:
        """Stable short name, e.g. ``onnx-int8``."""
        return f"{self.format}-{self.precision}"


class RecipeStep(_Strict):
    """A compression pass applied to the model before export, by registry name."""

    name: str
    options: dict[str, object] = Field(default_factory=dict)


class RuntimeOptions(_Strict):
    """How the board runs an artifact.

    ``accelerator``: what happens when an artifact that asks for one (a TensorRT artifact, or
    ONNX with a non-CPU provider) ran on the CPU: ``required`` fails its verdict, ``preferred``
    passes with a warning, ``none`` asks for nothing. ``ort_wheel`` / ``ort_index``: where an
    onnxruntime build with CUDA/TensorRT providers comes from (a host path to a wheel, or an index
    URL); inventory host vars ``edgeship_ort_wheel`` / ``edgeship_ort_index`` override them.
    """

    threads: int = Field(default=1, ge=1, le=64)
    onnx_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    accelerator: Literal["required", "preferred", "none"] = "none"
    ort_wheel: str | None = Field(default=None, pattern=r"\.whl$")
    ort_index: str | None = Field(default=None, pattern=r"^(https?|file)://\S+$")
    tflite_runtimes: tuple[Literal["ai_edge_litert", "tflite_runtime", "tensorflow.lite"], ...] = (
        "ai_edge_litert",
        "tflite_runtime",
        "tensorflow.lite",
    )


class ProfilingOptions(_Strict):
    """How the on-board agent measures."""

    warmup: int = Field(default=10, ge=0, le=100_000)
    runs: int = Field(default=100, ge=1, le=1_000_000)
    batch: int = Field(default=1, ge=1, le=1024)
    timeout_s: float = Field(default=300.0, gt=0)
    warmup_s: float = Field(default=0.0, ge=0, description="warm up at least this long too")
    duration_s: float = Field(default=0.0, ge=0, description="measure at least this long too")
    max_runs: int = Field(default=1_000_000, ge=1, description="cap on measured runs")
    until_stable: bool = Field(default=False, description="windows of `runs` until p50 settles")
    stable_tolerance: float = Field(default=0.02, gt=0, le=0.5)
    stable_windows: int = Field(default=3, ge=2, le=20)
    pin_cpus: str | None = Field(default=None, pattern=r"^(auto|\d+(,\d+)*)$",
                                 description="'auto' or a CPU list like '0,1'")
    op_top: int = Field(default=10, ge=0, le=200, description="slowest ops reported (0: none)")
    latency_samples: int = Field(default=1000, ge=0, le=100_000, description="raw samples kept")
    sample_interval_s: float = Field(default=1.0, gt=0, description="thermal sampling period")
    trtexec: bool = Field(default=False, description="also run trtexec (ONNX) when present")


class Budgets(_Strict):
    """Limits the measured figures are judged against; ``None`` means no limit."""

    p99_ms: float | None = Field(default=None, gt=0)
    peak_rss_mb: float | None = Field(default=None, gt=0)
    max_accuracy_drop: float = Field(default=0.01, ge=0, le=1)
    max_size_mb: float | None = Field(default=None, gt=0)
    hard: bool = False
    p50_regression_pct: float | None = Field(
        default=10.0, gt=0, description="flag p50 slower than the previous run by more than this")


class Fidelity(_Strict):
    """How closely each artifact must match the source model, per output kind.

    Every output is judged by what it is: ``classes`` (class scores: top-1 agreement, or the
    accuracy drop against ``budgets.max_accuracy_drop`` when the data has labels; the agreement
    is judged by its flips so a small evaluation set is not held to zero flips:
    ``top1_confidence``; a flip between classes the source scores as near-equal is not counted:
    ``top1_tie_ratio``; one score per sample beside other outputs is a binary decision: the
    sign of a logit, ``> 0.5`` of a probability), ``boxes`` /
    ``regression`` (coordinates, landmarks, offsets: max abs error relative to the output's
    range), ``map`` (feature / heat / segmentation maps) and ``other`` (cosine and mean error
    relative to the range), ``embedding`` (cosine), ``state`` (a recurrent state the data
    streams: judged by the outputs that follow, :mod:`converters.streams`). The kind is inferred from the output's name,
    shape and values; ``outputs`` overrides it per source output name. An fp32 artifact must
    match the source within ``fp32_tolerance`` of each output's range (or of its mean's
    magnitude when larger: a near-constant output far from zero): drift there is a
    conversion bug. ``divergence*`` are the per-layer thresholds used to name the first
    diverging operator of an artifact that fails.
    """

    fp32_tolerance: float = Field(default=1e-3, gt=0, le=1,
                                  description="fp32: max abs error / output range")
    min_top1_agreement: float = Field(
        default=0.99, ge=0, le=1,
        description="classes: the top-1 agreement with the source the artifact must have; "
                    "judged by the flips on the evaluation samples (see top1_confidence)")
    top1_confidence: float = Field(
        default=0.95, ge=0.5, lt=1,
        description="classes: an artifact fails when its top-1 flips show, at this confidence "
                    "(one-sided binomial test), an agreement below min_top1_agreement; at 0.99 "
                    "and 0.95 that allows 1 flip of 24 samples, 3 of 100, 15 of 1000")
    top1_tie_ratio: float = Field(
        default=0.8, gt=0, le=1,
        description="classes: a flip to a class the source itself scores at least this share "
                    "of its top-1 probability (a near-tie: the source is as unsure) is reported "
                    "but not counted; 1 counts every flip but exact ties")
    max_box_error: float = Field(default=0.05, gt=0, le=1,
                                 description="boxes/regression: max abs error / output range")
    min_cosine: float = Field(default=0.99, ge=-1, le=1, description="map, embedding, other")
    max_mean_error: float = Field(default=0.02, gt=0, le=1,
                                  description="map, other: mean abs error / output range")
    outputs: dict[str, Literal[OUTPUT_KINDS]] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="output kind by source output name")
    divergence: float = Field(default=0.1, gt=0, le=10,
                              description="int8/fp16 layer: relative RMS error to call diverged")
    divergence_fp32: float = Field(default=1e-3, gt=0, le=10,
                                   description="fp32 layer: relative RMS error to call diverged")
    divergence_samples: int = Field(default=4, ge=1, le=64,
                                    description="samples run layer by layer on a failure")


class Profile(_Strict):
    """A device class: target, artifacts to build, recipe, runtime, profiling and budgets."""

    name: str
    description: str = ""
    arch: Literal["x86_64", "aarch64", "armv7l"]
    python: str = Field(default="3.8", pattern=r"^3\.\d+$", description="oldest board Python")
    artifacts: tuple[Artifact, ...] = Field(min_length=1)
    recipe: tuple[RecipeStep, ...] = ()
    runtime: RuntimeOptions = RuntimeOptions()
    profiling: ProfilingOptions = ProfilingOptions()
    budgets: Budgets = Budgets()
    fidelity: Fidelity = Fidelity()
    opset: int = Field(default=18, ge=13, le=23)

    @model_validator(mode="after")
    def _unique_artifacts(self) -> "Profile":
        keys = [a.key for a in self.artifacts]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"artifacts listed twice: {', '.join(dupes)}")
        rt = self.runtime
        if rt.ort_wheel and rt.ort_index:
            raise ValueError("runtime: set ort_wheel or ort_index, not both")
        return self

    @property
    def formats(self) -> tuple[str, ...]:
        """The distinct formats asked for, in order."""
        return tuple(dict.fromkeys(a.format for a in self.artifacts))
