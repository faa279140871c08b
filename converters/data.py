"""Evaluation / calibration data (``--data``), see docs/architecture.md.

Three forms, one result: a ``.npz`` file; a directory of ``.npy`` files (``<input>.npy`` per
input, optional ``labels.npy`` and ``calibration.<input>.npy``); or ``package.module:function``
returning a dict of arrays with the same keys. One array per model input (first axis =
samples, source layout; integer inputs such as token ids keep their dtype), optional ``labels``
(int, ``[N]``), optional ``calibration.<input name>`` arrays. Every problem is a one-line
:class:`~core.errors.ConfigError` that names the source and what to change.

How one sample feeds the model (whole, or batch axis added) is the rule of :mod:`converters.feeds`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.errors import ConfigError

from ._util import file_sha256, import_callable, one_line
from .feeds import feed_shapes

__all__ = ["BOARD_SAMPLES", "CALIBRATION_PREFIX", "DEFAULT_CALIBRATION", "TRAIN_PREFIX", "Dataset",
           "load_dataset", "save_board_samples", "synthetic_dataset"]

log = logging.getLogger(__name__)

CALIBRATION_PREFIX = "calibration."
TRAIN_PREFIX = "train."
"""``train.<input name>`` arrays + ``train.labels``: the training split of fine-tuning passes."""
DEFAULT_CALIBRATION = 200
"""How many evaluation samples calibrate int8 when the file has no ``calibration.*`` arrays."""
BOARD_SAMPLES = 4
"""Samples shipped to the board in ``samples.npz``: the agent's smoke run and timing feeds. The
evaluation set (and its labels) stays on the host, where every artifact is verified."""
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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
    train: dict[str, np.ndarray] | None = None
    """Training split (``train.<input>`` arrays) by input name, for fine-tuning passes."""
    train_labels: np.ndarray | None = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Input name → the shape one sample is fed in (:mod:`converters.feeds`), once aligned."""

    @property
    def samples(self) -> int:
        """Number of evaluation samples."""
        return len(next(iter(self.inputs.values())))

    @property
    def names(self) -> list[str]:
        """Input names, in file order."""
        return list(self.inputs)

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """The static shape each input is fed in, e.g. ``(1, 1, 28, 28)`` or ``(2, 1, 128)``."""
        return feed_shapes(self.inputs, self.shapes)

    def aligned(self, declared: dict[str, tuple[int, ...]],
                dtypes: dict[str, str] | None = None) -> "Dataset":
        """The same data with each input's feed shape fixed against the model's *declared* shapes
        (``-1`` = dynamic; inputs not declared are fed batch-first) and dtypes checked; a
        one-line ConfigError when an array cannot feed its input."""
        for name, want in (dtypes or {}).items():
            got = self.inputs[name].dtype if name in self.inputs else None
            if got is not None and got.kind == "f" and np.dtype(want).kind in "iub":
                raise ConfigError(f"data input {name!r} holds {got} values but the model takes "
                                  f"{want}; save that array as {want}")
        return replace(self, shapes=feed_shapes(self.inputs, declared))

    def renamed(self, mapping: dict[str, str]) -> "Dataset":
        """The same data with inputs (and calibration arrays) renamed ``old -> new``."""
        inputs = {mapping.get(k, k): v for k, v in self.inputs.items()}
        calib = None
        if self.calibration is not None:
            calib = {mapping.get(k, k): v for k, v in self.calibration.items()}
        aliases = {mapping.get(k, k): self.aliases.get(k, k) for k in self.inputs}
        train = None if self.train is None else {mapping.get(k, k): v for k, v in self.train.items()}
        shapes = {mapping.get(k, k): v for k, v in self.shapes.items()}
        return replace(self, inputs=inputs, calibration=calib, aliases=aliases, train=train,
                       shapes=shapes)

    def train_set(self) -> tuple[dict[str, np.ndarray], np.ndarray | None] | None:
        """The training split (arrays by input name, labels or ``None``); ``None`` without one."""
        return None if self.train is None else (dict(self.train), self.train_labels)

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
    """Read and validate a ``.npz`` file, a directory of ``.npy`` files or ``module:function``."""
    ref = str(path)
    path = Path(path)
    if path.is_dir():
        arrays, sha = _read_npy_dir(path)
    elif path.is_file():
        arrays, sha = _read_npz(path), file_sha256(path)
    elif _CALLABLE.match(ref):
        arrays, sha = _call_data(ref)
    else:
        raise ConfigError(f"data file {path} does not exist; check the --data path (a .npz "
                          "file, a directory of .npy files or package.module:function)")
    return _dataset(path, arrays, ref, sha)


def _dataset(path: Path, arrays: dict[str, np.ndarray], ref: str, sha: str) -> Dataset:
    labels = arrays.pop("labels", None)
    train = {k[len(TRAIN_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(TRAIN_PREFIX)}
    train_labels = train.pop("labels", None)
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
    if train or train_labels is not None:
        train, train_labels = _check_train(path, train, train_labels, inputs)
    data = Dataset(inputs, labels, calib or None, ref, sha, train=train or None,
                   train_labels=train_labels)
    log.info("data %s: %d samples, inputs %s, labels %s", path, n, data.names, labels is not None)
    return data


def synthetic_dataset(shapes: dict[str, tuple[int, ...]], samples: int = 32, seed: int = 0,
                      dtypes: dict[str, str] | None = None) -> Dataset:
    """Seeded inputs for models given without data (verification is drift-only, no accuracy).

    *shapes* are the model's declared input shapes (``-1`` = dynamic). An input whose axis 0 is
    1 or dynamic gets batch-first samples fed with a batch of 1; any other input (state
    ``[2, 1, 128]``, a scalar ``[]``) gets whole samples of its declared shape. Other dynamic
    dimensions cannot be guessed: a one-line ConfigError asks for ``--input-shape`` or data.
    Float inputs are uniform [0, 1); integer and bool inputs (token ids, masks, flags, and
    scalars such as a sample rate, whose valid values no file declares) are ones — valid for
    any embedding table, a full attention mask, a true flag; give real values with ``--data``.
    """
    rng = np.random.default_rng(seed)
    inputs, feeds = {}, {}
    for name, shape in shapes.items():
        batch = len(shape) > 0 and shape[0] in (1, -1)
        per = tuple(shape[1:]) if batch else tuple(shape)
        if any(d < 1 for d in per):
            spec = "x".join(str(d) if d > 0 else "?" for d in ((1, *per) if batch else per))
            raise ConfigError(f"input {name!r} has dynamic dimensions {list(shape)}; pass --data, "
                              f"or --input-shape {name}={spec} with static sizes for the ?s")
        dtype = np.dtype((dtypes or {}).get(name, "float32"))
        size = (samples, *per)
        inputs[name] = (rng.random(size, dtype=np.float32).astype(dtype, copy=False)
                        if dtype.kind == "f" else np.ones(size, dtype=dtype))
        feeds[name] = (1, *per) if batch else per
    return Dataset(inputs, ref="synthetic", synthetic=True, shapes=feeds)


def save_board_samples(path: Path, inputs: dict[str, np.ndarray],
                       count: int = BOARD_SAMPLES) -> None:
    """Write ``samples.npz``: the first *count* samples of each input, in the data's layout
    (first axis = samples; the manifest's ``batch_axis`` says how each feeds the model)."""
    np.savez_compressed(path, **{k: np.ascontiguousarray(v[:count]) for k, v in inputs.items()})


def _read_npy_dir(path: Path) -> tuple[dict[str, np.ndarray], str]:
    files = sorted(path.glob("*.npy"))
    if not files:
        raise ConfigError(f"{path}: no .npy files; save one <input name>.npy per model input "
                          "(and optionally labels.npy)")
    digest = hashlib.sha256()
    arrays = {}
    for f in files:
        try:
            arrays[f.stem] = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ConfigError(f"{f} is not a .npy array ({one_line(exc)}); "
                              "save it with numpy.save") from exc
        digest.update(f"{f.name}|{file_sha256(f)}".encode())
    return arrays, digest.hexdigest()


def _call_data(ref: str) -> tuple[dict[str, np.ndarray], str]:
    func = import_callable(ref, ConfigError, "a dict of arrays")
    try:
        result = func()
    except Exception as exc:  # user code: any failure is a data error
        raise ConfigError(f"--data {ref}() raised {one_line(exc)}; fix the function") from exc
    if not isinstance(result, dict) or not all(isinstance(k, str) for k in result):
        raise ConfigError(f"--data {ref}() returned {type(result).__name__}; return a dict "
                          "of input name -> numpy array (plus optional labels)")
    arrays = {k: np.asarray(v) for k, v in result.items()}
    digest = hashlib.sha256(ref.encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{a.dtype}|{a.shape}".encode())
        digest.update(a.tobytes())
    return arrays, digest.hexdigest()


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


def _check_labels(path: Path, labels: np.ndarray, n: int, key: str = "labels") -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ConfigError(f"{path}: {key} must be a 1-D integer array of class ids, "
                          f"got shape {labels.shape} dtype {labels.dtype}")
    if len(labels) != n:
        raise ConfigError(f"{path}: {key} has {len(labels)} entries but the inputs have "
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


def _check_train(path: Path, train: dict[str, np.ndarray], labels: np.ndarray | None,
                 inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    if sorted(train) != sorted(inputs):
        raise ConfigError(f"{path}: training arrays {sorted(TRAIN_PREFIX + k for k in train)} do "
                          f"not match the inputs {sorted(inputs)}; add one {TRAIN_PREFIX}<input "
                          "name> array per input")
    for name, arr in train.items():
        expected = inputs[name].shape[1:]
        if arr.ndim < 1 or arr.shape[1:] != expected or arr.shape[0] == 0:
            raise ConfigError(f"{path}: {TRAIN_PREFIX}{name} has shape {arr.shape} but input "
                              f"{name!r} has {inputs[name].shape}; training samples must have "
                              f"the input's per-sample shape {expected}")
        train[name] = arr.astype(inputs[name].dtype)
    counts = {len(v) for v in train.values()}
    n = counts.pop()
    if counts:
        raise ConfigError(f"{path}: {TRAIN_PREFIX}* arrays have different sample counts; "
                          "every training array needs the same first axis")
    if labels is not None:
        labels = _check_labels(path, labels, n, f"{TRAIN_PREFIX}labels")
    return train, labels

