"""``transfer``: fine-tune a pretrained model on new labelled data (``train.*``), with freezing.

Guarantees: parameters of frozen layers are bit-identical afterwards; only the trainable ones
move. Freezing: ``train_last: N`` trains only the last N Conv/Linear layers (in module order,
with the BatchNorms that follow them), ``freeze`` names module-name prefixes to freeze; both
may combine. ``num_classes`` replaces the head (the last Linear) by a fresh, seeded one with that
many outputs when it differs — the model's output shape then changes, so verification against
the original model can only compare what still matches (use it with data whose labels fit).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from core.errors import ConfigError

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

__all__ = ["TransferConfig", "transfer"]

log = logging.getLogger(__name__)


class TransferConfig(TrainOptions):
    """Options of ``transfer``."""

    epochs: int = Field(default=3, ge=1, le=1000, description="fine-tune epochs")
    train_last: int | None = Field(default=None, ge=1,
                                   description="train only the last N Conv/Linear layers")
    freeze: tuple[str, ...] = Field(default=(), description="module-name prefixes to freeze")
    num_classes: int | None = Field(default=None, ge=2, le=1_000_000,
                                    description="replace the head when the class count differs")


def _layer_names(model: Any) -> list[str]:
    import torch

    return [n for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear))]


def _replace_head(model: Any, num_classes: int) -> str | None:
    import torch

    heads = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not heads:
        raise ConfigError("pass 'transfer': option 'num_classes' needs a model whose head is "
                          "an nn.Linear; remove num_classes or adapt the model")
    name = heads[-1]
    old = model.get_submodule(name)
    if old.out_features == num_classes:
        return None
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child,
            torch.nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return name


def _freeze(model: Any, config: TransferConfig) -> list[str]:
    """Set ``requires_grad``; return the frozen parameter names.

    With ``train_last``, every module from the first of the last N Conv/Linear layers on (in
    module order, so a following BatchNorm too) trains; ``freeze`` prefixes are always frozen.
    """
    order = [n for n, _ in model.named_modules()]
    layers = _layer_names(model)
    first = order.index(layers[-config.train_last]) if config.train_last and layers else 0
    frozen = []
    for pname, p in model.named_parameters():
        owner = pname.rpartition(".")[0]
        p.requires_grad = (order.index(owner) >= first
                           and not any(owner.startswith(f) for f in config.freeze))
        if not p.requires_grad:
            frozen.append(pname)
    return frozen


@register_pass("transfer", TransferConfig)
def transfer(model: Any, config: TransferConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Fine-tune the unfrozen part of the model on the training split."""
    import torch

    model = require_module(model, "transfer", structural=config.num_classes is not None)
    xs, y = train_split(dataset, "transfer")
    torch.manual_seed(config.seed)
    replaced = _replace_head(model, config.num_classes) if config.num_classes else None
    classes = int(model(*[x[:1] for x in xs]).shape[-1])
    if int(y.max()) >= classes:
        raise ConfigError(f"pass 'transfer': train.labels has class ids up to {int(y.max())} but "
                          f"the model outputs {classes} classes; set option 'num_classes'")
    evaluation = eval_split(dataset)
    acc = None if replaced else accuracy(model, evaluation)
    frozen = _freeze(model, config)
    losses = fit(model, cross_entropy, xs, y, epochs=config.epochs, options=config, pass_name="transfer")
    for p in model.parameters():
        p.requires_grad = True
    trainable = count_params(model) - sum(model.get_parameter(n).numel() for n in frozen)
    log.info("transfer: %d trainable parameters, %d frozen tensors", trainable, len(frozen))
    return model.eval(), {"head_replaced": replaced, "frozen": frozen,
                          "trainable_parameters": trainable, "epoch_losses": losses,
                          "accuracy_before": acc, "accuracy_after": accuracy(model, evaluation)}
