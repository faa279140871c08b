"""One logging path: each warning of ours once on stderr; third-party chatter (root-logger
warnings, Python warnings, C-level stderr) only with -v; a real convert says each thing once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def _chatter() -> None:
    mine = logging.getLogger("converters.something")
    for _ in range(3):
        mine.warning("int8 is slower than fp32 (p50 %.1f ms)", 2.0)
    mine.info("a detail")
    logging.warning("Axis 1 is out-of-range for weight 'w'")  # noqa: LOG015 - as the quantizer
    logging.getLogger("absl").warning("absl says something")
    warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
    with logs.native_stderr("tflite"):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")


def test_each_warning_of_ours_once_and_chatter_hidden(restore_logging,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    logs.setup(0)
    _chatter()
    err = capfd.readouterr().err
    assert err.splitlines() == ["edgeship: warning: int8 is slower than fp32 (p50 2.0 ms)"]


def test_verbose_shows_the_chatter_as_debug_lines(restore_logging,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    logs.setup(1)
    _chatter()
    lines = capfd.readouterr().err.splitlines()
    assert lines.count("edgeship: warning: int8 is slower than fp32 (p50 2.0 ms)") == 1
    assert "edgeship: info [converters.something]: a detail" in lines
    assert "edgeship: debug [root]: Axis 1 is out-of-range for weight 'w'" in lines
    assert "edgeship: debug [absl]: absl says something" in lines
    assert any(ln.startswith("edgeship: debug [py.warnings]: ") for ln in lines)
    assert ("edgeship: debug [native.tflite]: INFO: Created TensorFlow Lite XNNPACK delegate for "
            "CPU.") in lines


def test_a_convert_with_synthetic_inputs_says_each_thing_once(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("w1", (16, 8)), ("w2", (8, 4)))]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "tiny.onnx")
    profile = tmp_path / "tiny.yaml"
    profile.write_text("arch: x86_64\nartifacts:\n  - {format: onnx, precision: fp32}\n"
                       "  - {format: onnx, precision: int8}\n")
    env = {**os.environ, "EDGESHIP_HOME": str(tmp_path / "home")}
    env.pop("EDGESHIP_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "edgeship", "convert", "--profile", str(profile),
                           "--model", str(tmp_path / "tiny.onnx"), "--json"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    said = Counter(ln for ln in lines if "warning" in ln.lower())
    assert sum("synthetic random inputs" in ln for ln in lines) == 1, proc.stderr
    assert all(n == 1 for n in said.values()), said
    assert all(ln.startswith("edgeship: ") for ln in lines), proc.stderr  # nothing else's voice
