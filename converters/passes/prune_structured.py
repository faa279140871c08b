"""``prune_channels``: structured channel / neuron pruning with torch-pruning's dependency graph.

Guarantees: whole output channels (Conv) and units (Linear) are removed — with every layer that
depends on them (the next layer's inputs, BatchNorm, flatten → Linear) — so the exported model
has fewer channels, fewer bytes and less work; the final classifier (the last Conv/Linear the
forward pass runs) and any layer named in ``ignore`` keep their outputs, so the model's output
shape is unchanged. Channels are ranked by the L2 magnitude of their weights
(``torch_pruning.pruner.MagnitudePruner``). An optional recovery fine-tune trains on the
``train.*`` split. Needs the model's Python module (``package.module:factory``), not a .pt2 graph.
"""

from __future__ import annotations

import logging
from typing import Any

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

__all__ = ["PruneChannelsConfig", "last_layer", "prune_channels", "shrink_channels"]

log = logging.getLogger(__name__)


class PruneChannelsConfig(TrainOptions):
    """Options of ``prune_channels``."""

    ratio: float = Field(default=0.5, gt=0, lt=1, description="fraction of channels to remove")
    global_pruning: bool = Field(default=False,
                                 description="rank channels across layers instead of per layer")
    ignore: tuple[str, ...] = Field(default=(), description="module-name prefixes left intact")
    round_to: int | None = Field(default=None, ge=1, description="keep channel counts multiples of")
    finetune_epochs: int = Field(default=0, ge=0, le=1000, description="recovery fine-tune epochs")


def _layers(model: Any) -> dict[str, Any]:
    import torch

    return {n: m for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear))}


def last_layer(model: Any, example: tuple[Any, ...]) -> Any:
    """The last Conv/Linear the forward pass runs: the classifier / output projection."""
    import torch

    order: list[Any] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in _layers(model).values()]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise ValueError("the model runs no Conv/Linear layer; nothing to prune")
    return order[-1]


def _widths(model: Any) -> dict[str, int]:
    return {n: int(m.weight.shape[0]) for n, m in _layers(model).items()}


def shrink_channels(model: Any, example: tuple[Any, ...], ratio: float, ignore: tuple[str, ...] = (),
                    global_pruning: bool = False, round_to: int | None = None) -> dict[str, Any]:
    """Remove *ratio* of the channels of every layer but the last (in place); report widths."""
    import torch_pruning as tp

    layers = _layers(model)
    ignored = [last_layer(model, example)] + [m for n, m in layers.items()
                                              if any(n.startswith(p) for p in ignore)]
    before = _widths(model)
    pruner = tp.pruner.MagnitudePruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio, global_pruning=global_pruning, ignored_layers=ignored,
        round_to=round_to)
    pruner.step()
    after = _widths(model)
    return {"channels": {n: [before[n], after[n]] for n in before},
            "channels_removed": sum(before[n] - after[n] for n in before)}


def _example(dataset: Any, xs: list[Any] | None) -> tuple[Any, ...]:
    import torch

    if xs is not None:
        return tuple(x[:1] for x in xs)
    return tuple(torch.from_numpy(dataset.inputs[k][:1]) for k in dataset.names)


@register_pass("prune_channels", PruneChannelsConfig)
def prune_channels(model: Any, config: PruneChannelsConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Remove channels for real (torch-pruning), then optionally fine-tune to recover accuracy."""
    import torch

    model = require_module(model, "prune_channels", structural=True)
    train = train_split(dataset, "prune_channels") if config.finetune_epochs else None
    if dataset is None:
        raise ValueError("no data to trace the model with; pass a data file")
    evaluation = eval_split(dataset)
    params, acc = count_params(model), accuracy(model, evaluation)
    torch.manual_seed(config.seed)
    report = shrink_channels(model, _example(dataset, train[0] if train else None), config.ratio,
                             config.ignore, config.global_pruning, config.round_to)
    pruned_acc = accuracy(model, evaluation)
    losses = []
    if train is not None:
        losses = fit(model, cross_entropy, *train, epochs=config.finetune_epochs, options=config,
                     pass_name="prune_channels")
    model.eval()
    log.info("prune_channels: %d channels removed, %d -> %d parameters",
             report["channels_removed"], params, count_params(model))
    return model, {**report, "parameters_before": params, "parameters_after": count_params(model),
                   "accuracy_before": acc, "accuracy_pruned": pruned_acc,
                   "accuracy_after": accuracy(model, evaluation), "finetune_losses": losses}
