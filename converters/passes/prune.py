"""``prune``: unstructured magnitude pruning of Conv / Linear weights (``torch.nn.utils.prune``).

Guarantees: the requested fraction of weights (globally, or in every layer) is exactly zero, the
masks are made permanent (``prune.remove``) before export, and the model keeps its shapes. Every
runtime edgeship ships to (onnxruntime CPU, TFLite) is *dense*: zeros are stored and multiplied
like any other value, so the exported file has the same size and latency; only its compressed
size (e.g. zip / zlib on the wire) shrinks. The pass says so in its log and in its result; for a
smaller, faster model use ``prune_channels``. An optional recovery fine-tune (``finetune_epochs``
> 0) trains on the ``train.*`` split with the masks held fixed.
"""

from __future__ import annotations

import logging
import zlib
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

__all__ = ["PruneConfig", "prune"]

log = logging.getLogger(__name__)

DENSE_NOTE = ("masks change neither the size nor the latency of the dense exported model "
              "(onnxruntime / TFLite run zeros like any weight); only the compressed size shrinks")


class PruneConfig(TrainOptions):
    """Options of ``prune``.

    ``amount`` is the fraction of weights zeroed (smallest magnitudes first); when ``threshold``
    is set it replaces ``amount``: every weight with ``|w| < threshold`` is zeroed.
    """

    amount: float = Field(default=0.5, gt=0, lt=1, description="fraction of weights to zero")
    threshold: float | None = Field(default=None, gt=0, description="zero weights below |w|")
    scope: Literal["global", "layer"] = Field(
        default="global", description="rank magnitudes over all layers, or within each layer")
    finetune_epochs: int = Field(default=0, ge=0, le=1000, description="recovery fine-tune epochs")


def _targets(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of every Conv / Linear weight (any module's 2-D+ ``weight`` parameter)."""
    import torch

    return [(name, mod) for name, mod in model.named_modules()
            if isinstance(getattr(mod, "weight", None), torch.nn.Parameter) and mod.weight.dim() >= 2]


def _mask(targets: list[tuple[str, Any]], config: PruneConfig) -> None:
    from torch.nn.utils import prune as tprune

    pairs = [(mod, "weight") for _, mod in targets]
    if config.threshold is not None:
        for mod, _ in pairs:
            tprune.custom_from_mask(mod, "weight", mod.weight.detach().abs() >= config.threshold)
    elif config.scope == "global":
        tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=config.amount)
    else:
        for mod, _ in pairs:
            tprune.l1_unstructured(mod, "weight", amount=config.amount)


def _zlib_size(model: Any) -> int:
    return sum(len(zlib.compress(p.detach().numpy().tobytes(), 6)) for p in model.parameters())


@register_pass("prune", PruneConfig)
def prune(model: Any, config: PruneConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Zero the smallest weights, optionally fine-tune with the masks fixed, make it permanent."""
    import torch
    from torch.nn.utils import prune as tprune

    model = require_module(model, "prune")
    targets = _targets(model)
    if not targets:
        raise ValueError("no Conv/Linear weights to prune")
    train = train_split(dataset, "prune") if config.finetune_epochs else None
    evaluation = eval_split(dataset)
    before = {"accuracy": accuracy(model, evaluation), "zlib_bytes": _zlib_size(model)}
    torch.manual_seed(config.seed)
    _mask(targets, config)
    losses = []
    if train is not None:
        losses = fit(model, cross_entropy, *train, epochs=config.finetune_epochs, options=config,
                     pass_name="prune")
    for _, mod in targets:
        tprune.remove(mod, "weight")
    layers = {name: round(float((mod.weight == 0).float().mean()), 4) for name, mod in targets}
    total = sum(mod.weight.numel() for _, mod in targets)
    zeros = sum(int((mod.weight == 0).sum()) for _, mod in targets)
    log.warning("prune: %.1f%% of weights are zero; %s", 100 * zeros / total, DENSE_NOTE)
    return model, {
        "parameters": count_params(model), "pruned_weights": zeros, "sparsity": round(zeros / total, 4),
        "layer_sparsity": layers, "accuracy_before": before["accuracy"],
        "accuracy_after": accuracy(model, evaluation), "finetune_losses": losses,
        "zlib_bytes_before": before["zlib_bytes"], "zlib_bytes_after": _zlib_size(model),
        "dense_runtime_note": DENSE_NOTE}
