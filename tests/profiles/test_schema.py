"""Profile schema: the shipped profiles load; bad files fail with file + field + allowed values."""

from pathlib import Path

import pytest

from core.errors import ConfigError, UnknownNameError
from profiles import available_profiles, load_profile


def test_shipped_profiles_load() -> None:
    names = available_profiles()
    assert {"sim", "rpi4", "rpi5", "jetson-orin-nano"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.artifacts


def test_real_board_values_are_sensible() -> None:
    rpi4, jetson, sim = load_profile("rpi4"), load_profile("jetson-orin-nano"), load_profile("sim")
    assert rpi4.arch == "aarch64" and rpi4.runtime.threads == 4
    assert "tflite-int8" in [a.key for a in rpi4.artifacts]
    assert "onnx-fp16" in [a.key for a in jetson.artifacts]
    assert jetson.runtime.onnx_providers[0] == "TensorrtExecutionProvider"
    assert {a.key for a in sim.artifacts} == {"onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return path


BASE = "arch: aarch64\nartifacts: [{format: onnx, precision: fp32}]\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("thredas: 4\n", "unknown field 'thredas'"),
        ("runtime: {threads: 0}\n", "field 'runtime.threads'"),
        ("budgets: {p99_ms: -1}\n", "field 'budgets.p99_ms'"),
        ("budgets: {max_accuracy_drop: 2}\n", "field 'budgets.max_accuracy_drop'"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path: Path, extra: str, expected: str) -> None:
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    assert str(path) in str(info.value)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_precision_lists_allowed_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "arch: aarch64\nartifacts: [{format: onnx, precision: int4}]\n")
    with pytest.raises(ConfigError, match=r"artifacts\.0\.precision.*'fp32', 'fp16' or 'int8'"):
        load_profile(str(path))


def test_bad_arch_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="field 'arch'"):
        load_profile(str(_write(tmp_path, BASE.replace("aarch64", "arm64"))))
    dup = "arch: aarch64\nartifacts: [{format: onnx}, {format: onnx, precision: fp32}]\n"
    with pytest.raises(ConfigError, match="listed twice: onnx-fp32"):
        load_profile(str(_write(tmp_path, dup)))


def test_not_yaml_and_not_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile(str(_write(tmp_path, "arch: [unclosed\n")))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_profile(str(_write(tmp_path, "- just\n- a list\n")))


def test_unknown_profile_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'rpi4'"):
        load_profile("rpi-4")
