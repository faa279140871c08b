"""Evaluation / calibration data files (``--data FILE.npz``), see docs/architecture.md.

One array per model input (first axis = samples, source layout), optional ``labels`` (int,
``[N]``), optional ``calibration.<input name>`` arrays. Every problem is a one-line
:class:`~edgeship.errors.ConfigError` that names the file and what to change.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeship.errors import ConfigError

from ._util import file_sha256, one_line

__all__ = ["CALIBRATION_PREFIX", "DEFAULT_CALIBRATION", "Dataset", "load_dataset", "synthetic_dataset"]

log = logging.getLogger(__name__)

CALIBRATION_PREFIX = "calibration."
DEFAULT_CALIBRATION = 200
"""How many evaluation samples calibrate int8 when the file has no ``calibration.*`` arrays."""


@dataclass(frozen=True)
class Dataset:
    """Arrays of one data file, validated: inputs by name, labels, calibration by input name."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    calibration: dict[str, np.ndarray] | None = None
    ref: str = ""
    sha256: str | None = None
    synthetic: bool = False
    aliases: dict[str, str] = field(default_factory=dict)
    """Input name → its key in the file, for inputs renamed by :meth:`renamed`."""

    @property
    def samples(self) -> int:
        """Number of evaluation samples."""
        return len(next(iter(self.inputs.values())))

    @property
    def names(self) -> list[str]:
        """Input names, in file order."""
        return list(self.inputs)

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """Static batch-1 shape of each input, e.g. ``(1, 1, 28, 28)``."""
        return {k: (1, *v.shape[1:]) for k, v in self.inputs.items()}

    def renamed(self, mapping: dict[str, str]) -> "Dataset":
        """The same data with inputs (and calibration arrays) renamed ``old -> new``."""
        inputs = {mapping.get(k, k): v for k, v in self.inputs.items()}
        calib = None
        if self.calibration is not None:
            calib = {mapping.get(k, k): v for k, v in self.calibration.items()}
        aliases = {mapping.get(k, k): self.aliases.get(k, k) for k in self.inputs}
        return replace(self, inputs=inputs, calibration=calib, aliases=aliases)

    def calibration_set(self, limit: int = DEFAULT_CALIBRATION) -> tuple[dict[str, np.ndarray], str]:
        """Calibration arrays for int8 and a description for the manifest."""
        if self.calibration:
            n = len(next(iter(self.calibration.values())))
            names = ", ".join(f"{CALIBRATION_PREFIX}{self.aliases.get(k, k)}"
                              for k in self.calibration)
            return dict(self.calibration), f"{names} ({n})"
        n = min(limit, self.samples)
        arrays = {k: v[:n] for k, v in self.inputs.items()}
        if self.synthetic:
            return arrays, f"synthetic random inputs ({n}); int8 scales are not representative"
        return arrays, f"first {n} evaluation samples (no {CALIBRATION_PREFIX}* arrays)"


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a ``.npz`` data file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist; check the --data path")
    arrays = _read_npz(path)
    labels = arrays.pop("labels", None)
    calib = {k[len(CALIBRATION_PREFIX):]: arrays.pop(k) for k in list(arrays)
             if k.startswith(CALIBRATION_PREFIX)}
    if not arrays:
        raise ConfigError(f"{path}: no input arrays (only labels/calibration); "
                          "add one array per model input, keyed by the input's name")
    inputs = {k: _as_input(path, k, v) for k, v in arrays.items()}
    _check_counts(path, inputs)
    n = len(next(iter(inputs.values())))
    if labels is not None:
        labels = _check_labels(path, labels, n)
    if calib:
        calib = {k: _check_calibration(path, k, v, inputs) for k, v in calib.items()}
    data = Dataset(inputs, labels, calib or None, str(path), file_sha256(path))
    log.info("data %s: %d samples, inputs %s, labels %s", path, n, data.names, labels is not None)
    return data


def synthetic_dataset(shapes: dict[str, tuple[int, ...]], samples: int = 32, seed: int = 0) -> Dataset:
    """Seeded uniform [0, 1) inputs for models given without data (verification is drift-only)."""
    rng = np.random.default_rng(seed)
    inputs = {k: rng.random((samples, *s[1:]), dtype=np.float32) for k, s in shapes.items()}
    return Dataset(inputs, ref="synthetic", synthetic=True)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    hint = "save it with numpy.savez(path, input=..., labels=...)"
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"{path} is not a .npz archive ({one_line(exc)}); {hint}") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path} is not a .npz archive (it holds a single array); {hint}")
    try:
        with npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: cannot read its arrays ({one_line(exc)}); {hint}") from exc


def _as_input(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ConfigError(f"{path}: input {name!r} has no samples (shape {arr.shape}); "
                          "the first axis must count samples")
    if arr.dtype.kind not in "fiub":
        raise ConfigError(f"{path}: input {name!r} has dtype {arr.dtype}; use numeric arrays")
    return arr.astype(np.float32) if arr.dtype.kind == "f" and arr.dtype != np.float32 else arr


def _check_counts(path: Path, inputs: dict[str, np.ndarray]) -> None:
    counts = {k: len(v) for k, v in inputs.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{k}={n}" for k, n in counts.items())
        raise ConfigError(f"{path}: inputs have different sample counts ({listed}); "
                          "every input array needs the same first axis")


def _check_labels(path: Path, labels: np.ndarray, n: int) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ConfigError(f"{path}: labels must be a 1-D integer array of class ids, "
                          f"got shape {labels.shape} dtype {labels.dtype}")
    if len(labels) != n:
        raise ConfigError(f"{path}: labels has {len(labels)} entries but the inputs have "
                          f"{n} samples; they must match one to one")
    return labels.astype(np.int64)


def _check_calibration(path: Path, name: str, arr: np.ndarray,
                       inputs: dict[str, np.ndarray]) -> np.ndarray:
    key = f"{CALIBRATION_PREFIX}{name}"
    if name not in inputs:
        raise ConfigError(f"{path}: {key} matches no input array (inputs: {', '.join(inputs)}); "
                          f"name it {CALIBRATION_PREFIX}<input name>")
    expected = inputs[name].shape[1:]
    if arr.ndim < 1 or arr.shape[1:] != expected or arr.shape[0] == 0:
        raise ConfigError(f"{path}: {key} has shape {arr.shape} but input {name!r} has "
                          f"{inputs[name].shape}; calibration samples must have the input's "
                          f"per-sample shape {expected}")
    return arr.astype(inputs[name].dtype)
