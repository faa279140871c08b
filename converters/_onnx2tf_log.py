"""onnx2tf's real one-line cause, read from its exception and its log.

onnx2tf prints a traceback, the failing ONNX node (``ERROR: onnx_op_name: …``) and then four lines
of generic CLI advice (``-b``, ``-kt``, ``-onwdt``, …) on every failure. The cause a user needs is
either onnx2tf's own ERROR line (``CumProd OP is not yet implemented.``) or the message of the
exception it re-raised — for a TensorFlow shape error inside a Keras layer, the line between
Keras's "Exception encountered when calling layer" preamble and its "Call arguments received"
epilogue (``Dimensions must be equal, but are 40 and 120 for …``). :func:`cause` returns that,
with the ONNX node it happened at.
"""

from __future__ import annotations

import re

from ._util import one_line

__all__ = ["LIMIT", "cause"]

LIMIT = 400
"""Longest cause returned (characters); TensorFlow shape errors run to ~250."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_BOILERPLATE = ("The trace log is below", "input_onnx_file_path:", "onnx_op_name:",
                "Read this and deal with it", "Alternatively, if the input OP",
                "If the input OP of ONNX before conversion", "Also, for models that include",
                "Error in attempt")
_KERAS_PREAMBLE = re.compile(r"Exception encountered when calling layer .*?\(type \w+\)\.\s*",
                             re.S)
_KERAS_EPILOGUE = re.compile(r"\s*Call arguments received by layer.*", re.S)
_NODE = re.compile(r"(?:ERROR: onnx_op_name:|Error occurred at ONNX operation:)\s*(\S+)")


def cause(log: str, exc: BaseException | None) -> str:
    """One line: onnx2tf's own error, else the exception's message; `` (ONNX node N)`` added."""
    text = _ANSI.sub("", log)
    own = _own_errors(text)
    if own:
        line = own[0]
    elif exc is not None and not isinstance(exc, SystemExit):
        line = _exception_message(exc)
    else:
        warnings = [ln.split("WARNING:", 1)[1].strip() for ln in text.splitlines()
                    if "WARNING:" in ln and "onnx file" not in ln]
        code = exc.code if isinstance(exc, SystemExit) else None
        line = warnings[-1] if warnings else (f"onnx2tf stopped (exit status {code}) without "
                                              "a message")
        raised = _traceback_before(text, line) if warnings else None
        if raised:  # "Full INT8 Quantization tflite output failed." after the converter's error
            line = f"{line.rstrip('.')}: {raised}"
    node = _NODE.search(text)
    if node and node.group(1) not in line:
        line = f"{line.rstrip()} (ONNX node {node.group(1)})"
    return one_line(line, limit=LIMIT)


_RAISED = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")


def _traceback_before(text: str, warning: str) -> str | None:
    """The exception line of the traceback onnx2tf printed (as a warning) just before
    *warning* — TensorFlow's converter or calibrator error: ``RuntimeError: …reshape.cc:94
    num_input_elements != num_output_elements (256 != 128)Node number 25 (RESHAPE) failed to
    prepare.`` — or None when there is none."""
    lines = text.splitlines()
    at = max((i for i, ln in enumerate(lines) if warning in ln), default=None)
    if at is None:
        return None
    for ln in reversed(lines[max(0, at - 40):at]):
        if ln.strip().startswith(("WARNING:", "INFO:", "ERROR:")):
            return None  # another message in between: not this warning's traceback
        match = _RAISED.match(ln.strip())
        if match:
            return f"{match.group(1)}: {match.group(2)}"
    return None


def _own_errors(text: str) -> list[str]:
    """onnx2tf's ``ERROR:`` lines that are not its trace header, file path or CLI advice."""
    lines = [ln.split("ERROR:", 1)[1].strip() for ln in text.splitlines() if "ERROR:" in ln]
    return [ln for ln in lines if ln and not ln.startswith(_BOILERPLATE)]


def _exception_message(exc: BaseException) -> str:
    message = str(exc)
    stripped = _KERAS_EPILOGUE.sub("", _KERAS_PREAMBLE.sub("", message, count=1))
    if stripped != message and stripped.strip():
        return stripped.strip()  # a TensorFlow error inside a Keras layer: the message is enough
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
