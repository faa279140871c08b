"""``distill``: knowledge distillation from the incoming model (teacher) into a smaller student.

Guarantees: the returned model is the student, trained on the ``train.*`` split against the
teacher's outputs; the teacher is not changed. ``mode: logits`` (classifiers) minimises
``alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, labels)`` (labels are
needed only when ``alpha < 1``); ``mode: embedding`` matches outputs by cosine or MSE and needs no
labels. The student is ``student`` (``package.module:factory``, same inputs and output shape) or,
without it, the teacher narrowed to ``width`` of its channels / units (torch-pruning removes the
weakest channels; the output layer keeps its size), initialised from the teacher's remaining
weights (``init: teacher``) or afresh (``init: random``, seeded). Needs the teacher's Python
module for ``width`` (not a .pt2 graph).
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Literal

from pydantic import Field

from core.errors import ConfigError

from . import register_pass
from ._common import (
    TrainOptions,
    accuracy,
    count_params,
    eval_split,
    fit,
    predict,
    require_module,
    set_training,
    train_split,
)

__all__ = ["DistillConfig", "distill", "distill_loss"]

log = logging.getLogger(__name__)


class DistillConfig(TrainOptions):
    """Options of ``distill``."""

    student: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                                description="package.module:factory of the student")
    width: float = Field(default=0.5, gt=0, lt=1, description="student width without `student`")
    init: Literal["teacher", "random"] = Field(default="teacher",
                                               description="derived student's initial weights")
    mode: Literal["logits", "embedding"] = Field(default="logits", description="what is matched")
    temperature: float = Field(default=2.0, gt=0, le=100, description="softmax temperature T")
    alpha: float = Field(default=0.7, ge=0, le=1, description="weight of the soft-target loss")
    embedding_loss: Literal["cosine", "mse"] = Field(default="cosine",
                                                     description="loss of `mode: embedding`")
    epochs: int = Field(default=3, ge=1, le=1000, description="training epochs")


def distill_loss(student_out: Any, teacher_out: Any, labels: Any, config: DistillConfig) -> Any:
    """The training loss of one batch (see the module docstring)."""
    import torch.nn.functional as F

    if config.mode == "embedding":
        s, t = student_out.flatten(1), teacher_out.flatten(1)
        if config.embedding_loss == "mse":
            return F.mse_loss(s, t)
        return (1 - F.cosine_similarity(s, t, dim=1)).mean()
    T = config.temperature
    soft = F.kl_div(F.log_softmax(student_out / T, 1), F.log_softmax(teacher_out / T, 1),
                    reduction="batchmean", log_target=True) * T * T
    if config.alpha == 1 or labels is None:
        return soft
    return config.alpha * soft + (1 - config.alpha) * F.cross_entropy(student_out, labels)


def _student(teacher: Any, example: tuple[Any, ...], config: DistillConfig) -> tuple[Any, dict]:
    import torch

    if config.student:
        from converters.load import load_model

        return load_model(config.student).model, {"student": config.student}
    from .prune_structured import shrink_channels

    require_module(teacher, "distill", structural=True)
    student = copy.deepcopy(teacher)
    report = shrink_channels(student, example, 1 - config.width)
    if config.init == "random":
        torch.manual_seed(config.seed)
        for mod in student.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    return student, {"student": f"teacher at width {config.width}", **report}


def _kd_probe(student: Any, xs: list[Any], t_out: Any, config: DistillConfig) -> float:
    """Soft-target (or embedding) loss of *student* on a fixed probe of the training split."""
    import torch

    probe = config.model_copy(update={"alpha": 1.0})  # the pure KD loss
    with torch.no_grad():
        return round(float(distill_loss(predict(student, xs), t_out, None, probe)), 5)


@register_pass("distill", DistillConfig)
def distill(model: Any, config: DistillConfig, dataset: Any) -> tuple[Any, dict[str, Any]]:
    """Train a student to match the teacher; return the student."""
    teacher = require_module(model, "distill")
    needs_labels = config.mode == "logits" and config.alpha < 1
    xs, y = train_split(dataset, "distill", labels=needs_labels)
    student, report = _student(teacher, tuple(x[:1] for x in xs), config)
    targets = predict(teacher, [x[:512] for x in xs])
    _check_outputs(predict(student, [x[:1] for x in xs]), targets)
    set_training(teacher, False)
    probe = [x[:512] for x in xs]
    kd_before = _kd_probe(student, probe, targets, config)

    def loss_fn(m: Any, xb: list[Any], yb: Any) -> Any:
        return distill_loss(m(*xb), _teacher_batch(teacher, xb), yb, config)

    losses = fit(student, loss_fn, xs, y, epochs=config.epochs, options=config, pass_name="distill")
    evaluation = eval_split(dataset)
    result = {**report, "teacher_parameters": count_params(teacher),
              "student_parameters": count_params(student), "kd_loss_before": kd_before,
              "kd_loss_after": _kd_probe(student, probe, targets, config),
              "epoch_losses": losses}
    if config.mode == "logits":
        result |= {"teacher_accuracy": accuracy(teacher, evaluation),
                   "student_accuracy": accuracy(student, evaluation)}
    log.info("distill: student %d parameters (teacher %d), KD loss %.4f -> %.4f",
             result["student_parameters"], result["teacher_parameters"], kd_before,
             result["kd_loss_after"])
    return student.eval(), result


def _check_outputs(student_out: Any, teacher_out: Any) -> None:
    if tuple(student_out.shape[1:]) != tuple(teacher_out.shape[1:]):
        raise ConfigError(f"pass 'distill': the student's output shape "
                          f"{list(student_out.shape[1:])} differs from the teacher's "
                          f"{list(teacher_out.shape[1:])}; give a student with the same outputs")


def _teacher_batch(teacher: Any, xb: list[Any]) -> Any:
    import torch

    with torch.no_grad():
        return teacher(*xb)
