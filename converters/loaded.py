"""What a loader returns (:class:`LoadedModel`), and the check of ``--input-shape`` against a
file's declared inputs; shared by :mod:`converters.load` and :mod:`converters.source_tflite`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError

__all__ = ["LoadedModel", "fix_shapes"]

_NOT_TORCH = ("onnx", "tflite")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded source: the model object plus what identifies it.

    ``model`` is a ``torch.nn.Module`` for torch sources and the :class:`Path` of the file for
    ONNX and TFLite. ``input_names``/``input_shapes``/``input_dtypes`` come from the file, with
    dynamic dimensions (``-1``) fixed by the caller's ``input_shapes``; torch sources take them
    from ``input_shapes`` or the data file.
    """

    kind: str
    ref: str
    sha256: str
    model: Any = field(repr=False)
    input_names: tuple[str, ...] = ()
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    output_names: tuple[str, ...] = ()
    input_dtypes: dict[str, str] = field(default_factory=dict)
    fixed_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Inputs whose dynamic dimensions the caller fixed (``--input-shape``)."""

    @property
    def is_torch(self) -> bool:
        """True for every source but ONNX and TFLite."""
        return self.kind not in _NOT_TORCH

    @property
    def declared_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each input's shape as the model declares it (``-1`` = dynamic), keyed as synthetic
        data is: a torch source declares only what ``--input-shape`` gave, one shape = ``input``."""
        if self.is_torch and len(self.input_shapes) == 1:
            return {"input": next(iter(self.input_shapes.values()))}
        return dict(self.input_shapes)


def fix_shapes(path: Path, found: dict[str, tuple[int, ...]],
               given: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Check *given* shapes against the file's (``-1`` = dynamic); return the fixed inputs."""
    unknown = sorted(set(given) - set(found))
    if unknown:
        raise ConfigError(f"--input-shape names {', '.join(unknown)}, which {path.name} does not "
                          f"have; its inputs are {', '.join(found)}")
    for name, shape in given.items():
        model = found[name]
        if len(model) != len(shape) or any(m not in (-1, g) for m, g in zip(model, shape)):
            raise ConfigError(f"--input-shape {name}={'x'.join(map(str, shape))} does not fit "
                              f"{path.name}'s input {name!r} of shape {list(model)} (-1 = dynamic); "
                              "keep its static dimensions")
    return {k: v for k, v in given.items() if v != found[k]}
