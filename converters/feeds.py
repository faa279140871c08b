"""How one sample of the data feeds the model: the ONE rule, used wherever a sample is fed.

The data's first axis always counts samples. A sample of an input is either

* the input's full declared shape, fed as it is — recurrent state ``[2, 1, 128]`` from data
  ``[N, 2, 1, 128]``, a scalar ``[]`` (e.g. an int64 sample rate) from data ``[N]``; or
* that shape without its leading batch axis of 1 (axis 0 declared 1 or dynamic), which the
  feed puts back — image ``[1, 3, 224, 224]`` from data ``[N, 3, 224, 224]``.

Ranks decide (a sample of the declared rank is whole, one rank short gets the batch axis), so
the two forms never clash. Verification, the reference run, int8 calibration and ``samples.npz``
all go through :func:`sample_feed`; the on-board agent applies the same rule from each input's
``batch_axis`` in the manifest (``0``: samples stack along axis 0; ``null``: whole samples).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import ConfigError

__all__ = ["batch_axis", "feed_shape", "feed_shapes", "sample_feed", "with_batch_axes"]


def feed_shape(name: str, declared: tuple[int, ...] | None,
               per_sample: tuple[int, ...]) -> tuple[int, ...]:
    """The shape one sample of input *name* is fed in — THE rule, see the module docstring.

    *declared* is the model's shape (``-1`` = dynamic; ``None`` when unknown, as for torch
    sources without ``--input-shape``: batch-first). A sample of the declared rank is fed whole;
    one rank short, it gets a batch axis of 1 in front (the model's axis 0 must be 1 or dynamic).
    """
    per = tuple(int(d) for d in per_sample)
    if declared is None:
        return (1, *per)
    declared = tuple(int(d) for d in declared)
    if len(per) == len(declared) and _fits(declared, per):
        return per
    if len(per) + 1 == len(declared) and declared[0] in (1, -1) and _fits(declared[1:], per):
        return (1, *per)
    forms = [f"{_stacked(declared)} (whole samples)"]
    if declared and declared[0] in (1, -1):
        forms.append(f"{_stacked(declared[1:])} (batch axis added)")
    raise ConfigError(f"data input {name!r} has per-sample shape {per} but the model expects "
                      f"{list(declared)}; save it as {' or '.join(forms)}, first axis = samples")


def feed_shapes(arrays: dict[str, np.ndarray],
                shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """Feed shape of each of *arrays* (first axis = samples) against the model's *shapes*."""
    return {k: feed_shape(k, (shapes or {}).get(k), v.shape[1:]) for k, v in arrays.items()}


def sample_feed(arrays: dict[str, np.ndarray], i: int,
                shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Sample *i* of every input, shaped as the model takes it (*shapes*: feed or declared shapes;
    an input without one is fed batch-first, ``[1, ...]``); C-contiguous, scalars stay 0-d."""
    return {k: np.require(v[i] if batch_axis(v, (shapes or {}).get(k)) is None else v[i:i + 1],
                          requirements="C") for k, v in arrays.items()}


def batch_axis(array: np.ndarray, shape: tuple[int, ...] | None) -> int | None:
    """``0`` when samples of *array* stack along the model's axis 0 (batch-first), ``None`` when
    each sample is a whole tensor of the model's *shape* (no batch axis to stack along)."""
    return None if shape is not None and array.ndim == len(shape) + 1 else 0


def with_batch_axes(specs: list[dict[str, Any]], arrays: dict[str, np.ndarray],
                    shapes: dict[str, tuple[int, ...]]) -> list[dict[str, Any]]:
    """Manifest input entries (``source_name`` = data key) with their ``batch_axis`` added."""
    return [dict(spec, batch_axis=batch_axis(arrays[spec["source_name"]],
                                             shapes.get(spec["source_name"])))
            for spec in specs]


def _fits(declared: tuple[int, ...], got: tuple[int, ...]) -> bool:
    return all(d in (-1, g) for d, g in zip(declared, got))


def _stacked(shape: tuple[int, ...]) -> str:
    """``[N, 2, 1, 128]``: the data array holding samples of *shape* (``any`` = dynamic)."""
    return "[" + ", ".join(["N", *(str(d) if d > 0 else "any" for d in shape)]) + "]"
