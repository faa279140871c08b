"""``lowrank``: SVD factorization of Linear and Conv2d layers, rank by energy or parameter ratio.

Guarantees: a factorized ``Linear(in, out)`` becomes ``Sequential(Linear(in, r, bias=False),
Linear(r, out))``; a factorized ``Conv2d(in, out, k)`` becomes ``Sequential(Conv2d(in, r, k,
same stride/padding/dilation, bias=False), Conv2d(r, out, 1))`` — the best rank-r approximation of
the weight (truncated SVD, singular values split evenly between the factors). The rank is the
smallest keeping ``energy`` of the squared singular values, or, when ``ratio`` is set, the
largest whose factors hold at most ``ratio`` of the layer's weights. A layer is left alone when
factorizing would not save parameters (and grouped convs always). Optional fine-tune on
``train.*``. Needs the model's Python module (``package.module:factory``), not a .pt2 graph.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from . import register_pass
from ._common import (
    TrainOptions,
    accuracy,
    count_params,
    cross_entropy,
    eval_split,
    fit,
    require_module,
    train_split,
)

__all__ = ["LowRankConfig", "factorize", "lowrank"]

log = logging.getLogger(__name__)


class LowRankConfig(TrainOptions):
    """Options of ``lowrank``; ``ratio``, when set, replaces ``energy``."""

    energy: float = Field(default=0.9, gt=0, le=1,
                          description="fraction of squared singular values kept")
    ratio: float | None = Field(default=None, gt=0, lt=1,
                                description="target fraction of each layer's weights kept")
    layers: Literal["all", "linear", "conv"] = Field(default="all", description="layer types")
    skip: tuple[str, ...] = Field(default=(), description="module-name prefixes left intact")
    finetune_epochs: int = Field(default=0, ge=0, le=1000, description="fine-tune epochs")


def _rank(s: Any, full: int, rows: int, cols: int, config: LowRankConfig) -> int:
    """Chosen rank for singular values *s* of a ``rows x cols`` weight."""
    import torch

    if config.ratio is not None:
        return max(1, min(full, int(config.ratio * rows * cols / (rows + cols))))
    energy = torch.cumsum(s ** 2, 0) / torch.sum(s ** 2)
    return min(full, int(torch.searchsorted(energy, torch.tensor(config.energy) - 1e-7)) + 1)


def factorize(layer: Any, config: LowRankConfig) -> tuple[Any, dict[str, Any]] | None:
    """The factorized replacement of *layer* and its report, or ``None`` when it saves nothing."""
    import torch

    w = layer.weight.detach()
    conv = isinstance(layer, torch.nn.Conv2d)
    if conv and layer.groups != 1:
        return None
    rows, cols = w.shape[0], w[0].numel()
    u, s, vh = torch.linalg.svd(w.reshape(rows, cols), full_matrices=False)
    r = _rank(s, len(s), rows, cols, config)
    if r * (rows + cols) >= rows * cols:
        return None
    root = s[:r].sqrt()
    first_w, second_w = root[:, None] * vh[:r], u[:, :r] * root[None, :]
    if conv:
        first = torch.nn.Conv2d(layer.in_channels, r, layer.kernel_size, layer.stride,
                                layer.padding, layer.dilation, bias=False,
                                padding_mode=layer.padding_mode)
        second = torch.nn.Conv2d(r, rows, 1, bias=layer.bias is not None)
        first.weight.data = first_w.reshape(r, *w.shape[1:]).contiguous()
        second.weight.data = second_w.reshape(rows, r, 1, 1).contiguous()
    else:
        first = torch.nn.Linear(cols, r, bias=False)
        second = torch.nn.Linear(r, rows, bias=layer.bias is not None)
        first.weight.data, second.weight.data = first_w.contiguous(), second_w.contiguous()
    if layer.bias is not None:
        second.bias.data = layer.bias.detach().clone()
    kept = float((s[:r] ** 2).sum() / (s ** 2).sum())
    return torch.nn.Sequential(first, second), {
        "shape": list(w.shape), "rank": r, "full_rank": len(s), "energy_kept": round(kept, 4),
        "parameters": [rows * cols, r * (rows + cols)]}


def _candidates(model: Any, config: LowRankConfig) -> list[tuple[str, Any]]:
    import torch

    kinds = {"all": (torch.nn.Linear, torch.nn.Conv2d), "linear": (torch.nn.Linear,),
             "conv": (torch.nn.Conv2d,)}[config.layers]
    return [(n, m) for n, m in model.named_modules()
            if type(m) in kinds and not any(n.startswith(p) for p in config.skip)]


def _replace(model: Any, name: str, new: Any) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@register_pass("lowrank", LowRankConfig)
def lowrank(model: Any, config: LowRankConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Factorize every eligible layer, then optionally fine-tune."""
    model = require_module(model, "lowrank", structural=True)
    train = train_split(dataset, "lowrank") if config.finetune_epochs else None
    evaluation = eval_split(dataset)
    params, acc = count_params(model), accuracy(model, evaluation)
    layers, skipped = {}, []
    for name, layer in _candidates(model, config):
        made = factorize(layer, config)
        if made is None:
            skipped.append(name)
            continue
        _replace(model, name, made[0])
        layers[name] = made[1]
    factorized_acc = accuracy(model, evaluation)
    losses = []
    if train is not None:
        losses = fit(model, cross_entropy, *train, epochs=config.finetune_epochs, options=config,
                     pass_name="lowrank")
    model.eval()
    log.info("lowrank: %d layers factorized, %d skipped (no saving); %d -> %d parameters",
             len(layers), len(skipped), params, count_params(model))
    return model, {"layers": layers, "skipped": skipped, "parameters_before": params,
                   "parameters_after": count_params(model), "accuracy_before": acc,
                   "accuracy_factorized": factorized_acc,
                   "accuracy_after": accuracy(model, evaluation), "finetune_losses": losses}
