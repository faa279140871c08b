"""The child side of :mod:`converters.export_litert`: PyTorch → TFLite with litert-torch.

Runs as ``<litert venv>/bin/python _litert_child.py REQUEST.json`` in its own environment
(litert-torch's dependencies conflict with the host's pins), so it imports nothing of edgeship:
only the standard library, numpy, torch and litert_torch. Each precision is converted on its
own; the result of each (file or one-line error) goes to ``result.json`` beside the request.
Inputs and outputs of 3–5 dimensions are made channels-last, as onnx2tf makes them, so both
routes' files are fed and read the same way.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Convert per ``argv[0]`` (request JSON); return the exit status."""
    request = json.loads(Path(argv[0]).read_text())
    work = Path(argv[0]).parent
    _disable_network()
    import torch

    torch.manual_seed(0)
    module = torch.export.load(request["pt2"]).module()
    calib = [np.load(p) for _, p in request["calibration"]]
    args = tuple(torch.from_numpy(np.ascontiguousarray(c[:1])) for c in calib)
    results = {}
    for precision in request["precisions"]:
        start = time.perf_counter()
        out = Path(request["out"]) / f"model.{precision}.tflite"
        try:
            _convert(module, args, calib, precision, request["per_channel"], out)
            results[precision] = {"ok": True, "file": str(out)}
        except Exception as exc:  # litert-torch / torch.export raise many types
            tb = traceback.format_exc(limit=-3)
            results[precision] = {"ok": False, "error": _one_line(exc), "trace": tb[-2000:]}
        results[precision]["seconds"] = round(time.perf_counter() - start, 2)
    (work / "result.json").write_text(json.dumps({"ok": True, "results": results}))
    return 0


def _convert(module: Any, args: tuple[Any, ...], calib: list[np.ndarray], precision: str,
             per_channel: bool, out: Path) -> None:
    import litert_torch

    wrapped, ins = _channels_last(module, args)
    calib = [_last(c, i in ins) for i, c in enumerate(calib)]
    args = tuple(_last(a, i in ins) for i, a in enumerate(args))
    if precision == "fp32":
        litert_torch.convert(wrapped, args).export(str(out))
    elif precision == "int8":
        quantized, config = _pt2e(wrapped, args, calib, per_channel)
        litert_torch.convert(quantized, args, quant_config=config).export(str(out))
    else:
        raise ValueError(f"litert-torch route makes fp32 and int8, not {precision}")


def _last(x: Any, move: bool) -> Any:
    """*x* (a numpy array or tensor, channels-first) with its channel axis moved last."""
    if not move:
        return x
    perm = (0, *range(2, x.ndim), 1)
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x.transpose(perm))
    return x.permute(perm).contiguous()


def _channels_last(module: Any, args: tuple[Any, ...]) -> tuple[Any, list[int]]:
    """*module* wrapped to take and give channels-last tensors; the indices of moved inputs."""
    import litert_torch
    import torch

    with torch.no_grad():
        outs = module(*args)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    ins = [i for i, a in enumerate(args) if 3 <= a.dim() <= 5]
    outputs = [i for i, o in enumerate(outs) if 3 <= o.dim() <= 5]
    if not ins and not outputs:
        return module, ins
    return litert_torch.to_channel_last_io(module, args=ins, outputs=outputs), ins


def _pt2e(module: Any, args: tuple[Any, ...], calib: list[np.ndarray],
          per_channel: bool) -> tuple[Any, Any]:
    """Static int8 by PT2E (``convert_pt2e(fold_quantize=False)``: litert-torch folds itself),
    calibrated one sample at a time on the calibration data."""
    import torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=per_channel))
    exported = torch.export.export(module, args).module()
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(len(calib[0])):
            prepared(*(torch.from_numpy(np.ascontiguousarray(c[i:i + 1])) for c in calib))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return converted, quant_config.QuantConfig(pt2e_quantizer=quantizer)


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _disable_network() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("network access is disabled during TFLite conversion (edgeship)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python _litert_child.py REQUEST.json (written by export_litert)")
    sys.exit(main(sys.argv[1:]))
