"""Helpers shared by the built-in passes: config bases, the training split, a seeded training loop.

Every pass config derives from :class:`PassConfig` (frozen, ``extra="forbid"``); training passes
take :class:`TrainOptions`. Training reads the data file's ``train.*`` split
(:meth:`converters.data.Dataset.train_set`) and never the evaluation arrays, which are used only
to report accuracy before/after. Loops are seeded (``torch.manual_seed`` + a seeded generator for
batch order), so the same recipe on the same data gives the same weights.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.errors import ConfigError

__all__ = ["PassConfig", "TrainOptions", "accuracy", "count_params", "cross_entropy", "eval_split",
           "fit",
           "predict", "require_module", "set_training", "train_split"]

log = logging.getLogger(__name__)

LossFn = Callable[[Any, list[Any], Any], Any]
"""``loss_fn(model, inputs_batch, labels_batch_or_None) -> scalar tensor``."""


class PassConfig(BaseModel):
    """Base of every pass config: frozen, unknown options refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainOptions(PassConfig):
    """Optimiser options shared by the passes that train (Adam on the ``train.*`` split)."""

    lr: float = Field(default=1e-3, gt=0, le=1, description="Adam learning rate")
    batch_size: int = Field(default=64, ge=1, le=65536, description="training batch size")
    seed: int = Field(default=0, ge=0, description="seed of initialisation and batch order")


def require_module(model: Any, pass_name: str, structural: bool = False) -> Any:
    """*model* as a trainable ``nn.Module``; *structural* passes also need its Python layers."""
    import torch

    if not isinstance(model, torch.nn.Module) or isinstance(model, torch.jit.ScriptModule):
        raise ConfigError(f"pass {pass_name!r} needs a PyTorch module, got "
                          f"{type(model).__name__}; give a package.module:factory or .pt2 source")
    if structural and isinstance(model, torch.fx.GraphModule):
        raise ConfigError(f"pass {pass_name!r} rewrites layers and needs the model's Python "
                          "module, not an exported .pt2 graph; give package.module:factory "
                          "(e.g. edgeship.demo:trained_model)")
    return model


def train_split(dataset: Any, pass_name: str, labels: bool = True) -> tuple[list[Any], Any]:
    """The ``train.*`` arrays as tensors (in input order) and labels; one-line error without."""
    import torch

    split = dataset.train_set() if dataset is not None else None
    if split is None:
        raise ConfigError(f"pass {pass_name!r} needs training data: the data file needs "
                          "train.<input name> arrays and train.labels (docs/architecture.md)")
    arrays, y = split
    if labels and y is None:
        raise ConfigError(f"pass {pass_name!r} needs labels for its training data: add "
                          "train.labels to the data file (int class ids, one per sample)")
    xs = [torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in dataset.names]
    return xs, None if y is None else torch.from_numpy(y)


def eval_split(dataset: Any) -> tuple[list[Any], Any] | None:
    """The evaluation arrays as tensors and labels (``None`` without labels or data)."""
    import torch

    if dataset is None or dataset.labels is None or dataset.synthetic:
        return None
    xs = [torch.from_numpy(np.ascontiguousarray(dataset.inputs[k])) for k in dataset.names]
    return xs, torch.from_numpy(dataset.labels)


def count_params(model: Any) -> int:
    """Number of parameters (elements)."""
    return int(sum(p.numel() for p in model.parameters()))


def set_training(model: Any, training: bool) -> None:
    """Switch train/eval mode; exported graphs keep the mode baked in at export."""
    import torch

    if not isinstance(model, torch.fx.GraphModule):
        model.train(training)


def predict(model: Any, xs: list[Any], batch: int = 256) -> Any:
    """Outputs of *model* on *xs* (no grad), in batches; batch 1 for exported graphs."""
    import torch

    if isinstance(model, torch.fx.GraphModule):
        batch = 1
    set_training(model, False)
    with torch.no_grad():
        outs = [model(*[x[i:i + batch] for x in xs]) for i in range(0, len(xs[0]), batch)]
    return torch.cat(outs)


def accuracy(model: Any, split: tuple[list[Any], Any] | None) -> float | None:
    """Top-1 accuracy on *split* (from :func:`eval_split`), rounded; ``None`` without labels."""
    if split is None:
        return None
    xs, y = split
    return round(float((predict(model, xs).argmax(1) == y).float().mean()), 4)


def cross_entropy(model: Any, xb: list[Any], yb: Any) -> Any:
    """The hard-label loss the fine-tunes share: cross-entropy of ``model(*xb)`` against *yb*."""
    import torch

    return torch.nn.functional.cross_entropy(model(*xb), yb)


def fit(model: Any, loss_fn: LossFn, xs: list[Any], y: Any, *, epochs: int, options: TrainOptions,
        pass_name: str, params: list[Any] | None = None) -> list[float]:
    """Train *model* with Adam for *epochs*; return the mean loss of each epoch."""
    import torch

    torch.manual_seed(options.seed)
    gen = torch.Generator().manual_seed(options.seed)
    params = [p for p in (params or model.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=options.lr)
    losses = []
    set_training(model, True)
    for _ in range(epochs):
        total, count = 0.0, 0
        for idx in torch.randperm(len(xs[0]), generator=gen).split(options.batch_size):
            loss = _step_loss(model, loss_fn, [x[idx] for x in xs],
                              None if y is None else y[idx], pass_name)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        losses.append(round(total / max(count, 1), 5))
    set_training(model, False)
    return losses


def _step_loss(model: Any, loss_fn: LossFn, xb: list[Any], yb: Any, pass_name: str) -> Any:
    try:
        return loss_fn(model, xb, yb)
    except RuntimeError as exc:
        if len(xb[0]) > 1 and "shape" in str(exc).lower():
            raise ConfigError(f"pass {pass_name!r}: the model cannot run a batch of "
                              f"{len(xb[0])} (fixed batch size?); fine-tuning needs a "
                              "package.module:factory source or a .pt2 exported with a dynamic "
                              "batch") from exc
        raise
