"""``qat``: quantization-aware fine-tuning with fake quantization, leaving a float model.

What it is (honestly): not PyTorch's eager ``prepare_qat``/``convert`` flow (deprecated in torch
2.x) nor torchao (not a dependency). During the fine-tune, every Conv/Linear weight is replaced
by its int8 fake-quantized value (symmetric, per output channel or per tensor, scale =
max|w|/127 — what onnxruntime's QDQ and TFLite's full-integer converter use) through a
parametrization, and every Conv/Linear output is fake-quantized per tensor (int8, affine, scale
from a running min/max); gradients pass straight through (``torch.fake_quantize_*``). Then the
fake-quant is removed: the model stays float, with weights adapted to int8 and — with
``bake_weights`` — already on the int8 grid, and the normal int8 artifacts (ONNX static QDQ,
TFLite int8) quantize it after export with their own calibration. Trains on ``train.*``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from . import register_pass
from ._common import (
    TrainOptions,
    accuracy,
    cross_entropy,
    eval_split,
    fit,
    require_module,
    train_split,
)

__all__ = ["QatConfig", "qat"]

log = logging.getLogger(__name__)


class QatConfig(TrainOptions):
    """Options of ``qat``."""

    epochs: int = Field(default=2, ge=1, le=1000, description="fake-quant fine-tune epochs")
    lr: float = Field(default=1e-4, gt=0, le=1, description="Adam learning rate")
    per_channel: bool = Field(default=True, description="weight scales per output channel")
    activations: bool = Field(default=True, description="also fake-quantize layer outputs")
    bake_weights: bool = Field(default=True, description="leave weights on the int8 grid")


def _weight_fq(per_channel: bool) -> Any:
    import torch

    class WeightFakeQuant(torch.nn.Module):
        """Symmetric int8 fake quantization of a weight (straight-through gradient)."""

        def forward(self, w: Any) -> Any:
            dims = tuple(range(1, w.dim()))
            amax = w.detach().abs().amax(dim=dims) if per_channel else w.detach().abs().max()
            scale = (amax / 127).clamp(min=1e-12)
            if per_channel:
                zero = torch.zeros(len(scale), dtype=torch.int32)
                return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)
            return torch.fake_quantize_per_tensor_affine(w, float(scale), 0, -127, 127)

    return WeightFakeQuant()


def _act_hook(state: dict[str, float], momentum: float = 0.1) -> Any:
    import torch

    def hook(_mod: Any, _inp: Any, out: Any) -> Any:
        lo, hi = float(out.detach().min()), float(out.detach().max())
        if "lo" not in state:
            state.update(lo=lo, hi=hi)
        state["lo"] += momentum * (lo - state["lo"])
        state["hi"] += momentum * (hi - state["hi"])
        lo, hi = min(state["lo"], 0.0), max(state["hi"], 0.0)
        scale = max((hi - lo) / 255, 1e-12)
        zero = int(round(-128 - lo / scale))
        return torch.fake_quantize_per_tensor_affine(out, scale, max(-128, min(127, zero)), -128, 127)

    return hook


@register_pass("qat", QatConfig)
def qat(model: Any, config: QatConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Fine-tune with int8 fake quantization in the loop, then remove it (float model out)."""
    import torch
    from torch.nn.utils import parametrize

    model = require_module(model, "qat", structural=True)
    xs, y = train_split(dataset, "qat")
    evaluation = eval_split(dataset)
    acc = accuracy(model, evaluation)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear,
                                                           torch.nn.Conv1d))]
    hooks = []
    for mod in layers:
        parametrize.register_parametrization(mod, "weight", _weight_fq(config.per_channel))
        if config.activations:
            hooks.append(mod.register_forward_hook(_act_hook({})))
    try:
        fake_acc = accuracy(model, evaluation)
        losses = fit(model, cross_entropy, xs, y, epochs=config.epochs, options=config, pass_name="qat")
        qat_acc = accuracy(model, evaluation)
    finally:
        for h in hooks:
            h.remove()
        for mod in layers:
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=config.bake_weights)
    log.info("qat: %d layers fine-tuned with int8 fake quantization", len(layers))
    return model.eval(), {"layers": len(layers), "epoch_losses": losses, "accuracy_before": acc,
                          "accuracy_fake_quant_before": fake_acc, "accuracy_fake_quant_after": qat_acc,
                          "accuracy_after": accuracy(model, evaluation)}
