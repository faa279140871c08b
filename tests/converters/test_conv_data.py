"""converters.data: the data-file contract and its one-line ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters import load_dataset
from converters._util import file_sha256
from core.errors import ConfigError

X = np.zeros((10, 1, 4, 4), np.float32)


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def test_valid_file(tmp_path: Path) -> None:
    path = _npz(tmp_path, x=X.astype(np.float64), labels=np.arange(10),
                **{"calibration.x": X[:3]})
    data = load_dataset(path)
    assert data.names == ["x"] and data.samples == 10 and data.sha256 == file_sha256(path)
    assert data.inputs["x"].dtype == np.float32
    arrays, desc = data.calibration_set()
    assert arrays["x"].shape == (3, 1, 4, 4) and desc == "calibration.x (3)"


def test_default_calibration_is_first_samples(tmp_path: Path) -> None:
    arrays, desc = load_dataset(_npz(tmp_path, x=X)).calibration_set()
    assert len(arrays["x"]) == 10 and desc.startswith("first 10 evaluation samples")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"labels": np.arange(10)}, "no input arrays"),
    ({"a": X, "b": X[:7]}, r"different sample counts \(a=10, b=7\)"),
    ({"x": X, "labels": np.arange(9)}, "labels has 9 entries but the inputs have 10 samples"),
    ({"x": X, "labels": np.zeros(10, np.float32)}, "labels must be a 1-D integer array"),
    ({"x": X, "calibration.x": np.zeros((5, 1, 8, 8), np.float32)},
     r"calibration\.x has shape \(5, 1, 8, 8\) but input 'x' has \(10, 1, 4, 4\)"),
    ({"x": X, "calibration.y": X}, r"calibration\.y matches no input array"),
    ({"x": np.zeros((0, 3), np.float32)}, "has no samples"),
])
def test_invalid_files(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_dataset(_npz(tmp_path, **arrays))
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data file .*missing\.npz does not exist"):
        load_dataset(tmp_path / "missing.npz")


@pytest.mark.parametrize("content", [b"not a zip at all", None])
def test_not_an_npz(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "d.npz"
    if content is None:
        with open(path, "wb") as fh:
            np.save(fh, X)  # a .npy payload under an .npz name
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="is not a .npz archive"):
        load_dataset(path)
