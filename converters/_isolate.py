"""Per-artifact isolation: an artifact that cannot be made, loaded or verified is left out.

A failing route never takes the others down. Each artifact of the profile is made, loaded in
its runtime (cheap) and verified (expensive) on its own; a failure at any stage becomes a
:class:`LeftOut` — ``key``, ``stage`` (``export`` | ``quantize`` | ``convert`` | ``load`` |
``verify``), ``tool``, ``cause`` (the tool's own one-line message) and ``tried`` (the routes and
remedies that were tried) — recorded in the manifest's ``left_out`` list, the console tables
and the report. :func:`check_survivors` fails the bundle only when no artifact survives or an
artifact the profile marks ``required: true`` was left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.errors import ConversionError, VerificationError

from ._util import one_line

__all__ = ["STAGES", "LeftOut", "check_survivors", "make_tool", "runtime_tool"]

Stage = Literal["export", "quantize", "convert", "load", "verify"]
STAGES: tuple[str, ...] = ("export", "quantize", "convert", "load", "verify")

_MAKE_TOOLS = {"onnx-fp32": "torch.onnx", "onnx-int8": "onnxruntime.quantization",
               "onnx-fp16": "onnxruntime.transformers.float16"}
_RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai_edge_litert"}


def make_tool(key: str) -> str:
    """The tool that makes the artifact *key* (``onnx2tf`` for every TFLite precision)."""
    return _MAKE_TOOLS.get(key, "onnx2tf" if key.startswith("tflite-") else "edgeship")


def runtime_tool(key: str) -> str:
    """The runtime that loads and runs the artifact *key* on the host."""
    return _RUNTIMES.get(key.split("-")[0], "edgeship")


@dataclass(frozen=True)
class LeftOut:
    """One artifact of the profile that is not in the bundle, and why (manifest ``left_out``)."""

    key: str
    stage: Stage
    tool: str
    cause: str
    tried: list[str] = field(default_factory=list)
    required: bool = False
    delivered_instead: str | None = None
    figures: list[dict[str, Any]] = field(default_factory=list)
    """Each int8 remedy tried, with its gate figures or error (``fallback.figures`` of a built
    artifact); in the manifest only when there are some."""

    @classmethod
    def from_error(cls, key: str, stage: Stage, tool: str, exc: BaseException,
                   tried: list[str] | None = None, required: bool = False) -> LeftOut:
        """From the exception a maker, runtime or gate raised: its message, on one line.

        *tried* defaults to the routes the error carries (``exc.tried``), else, for a stage that
        makes the file, the one tool that was tried.
        """
        cause = str(exc) if isinstance(exc, ConversionError) and str(exc) else one_line(exc)
        made_by = [tool] if stage in ("export", "quantize", "convert") else []
        return cls(key, stage, tool, one_line(cause, limit=400),
                   list(tried or getattr(exc, "tried", None) or made_by), required)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form."""
        entry = asdict(self)
        if not entry["figures"]:
            del entry["figures"]
        return entry

    def line(self) -> str:
        """``key (stage, tool): cause [tried a, b]`` for one-line errors and progress."""
        tried = f" [tried {', '.join(self.tried)}]" if self.tried else ""
        instead = f" ({self.delivered_instead} delivered instead)" if self.delivered_instead else ""
        return f"{self.key} ({self.stage}, {self.tool}): {self.cause}{tried}{instead}"


def check_survivors(survivors: int, left_out: list[LeftOut]) -> None:
    """Raise when no artifact survived (*survivors* is 0), or a ``required`` one was left out.

    Called after the artifacts are made (a required one failing stops the build before the
    expensive verification) and again after verification.

    The error is a :class:`VerificationError` when every fatal artifact failed its gate, else a
    :class:`ConversionError`; one line naming each fatal artifact, its stage, tool and cause.
    """
    fatal = [lo for lo in left_out if lo.required] if survivors else list(left_out)
    if not fatal:
        return
    what = ("no artifact survived" if not survivors else
            f"required artifact{'s' if len(fatal) > 1 else ''} left out")
    error = VerificationError if all(lo.stage == "verify" for lo in fatal) else ConversionError
    hint = ("mark only the artifacts you cannot do without `required: true`, or fix the causes"
            if survivors else "fix the causes, or ask the profile for other formats/precisions")
    raise error(f"{what}: {'; '.join(lo.line() for lo in fatal)}; the bundle was not written — "
                f"{hint}")
