"""Test kit for tests/runtimes: tiny bundles per docs/architecture.md (no converters package
needed) and transports that keep the developer's ~/.ssh out.

ONNX: MatMul + Add + Relu on ``[1, 16]`` built with ``onnx.helper``. TFLite (fp32 and full-int8):
a small ``tf.function`` converted in a *subprocess*, so tensorflow never loads into pytest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.paths import Paths
from devices import Board
from profiler.agent import AGENT_PATH
from runtimes import SSHTransport

__all__ = [
    "build_tiny_models",
    "finish_tiny_models",
    "start_tiny_models",
    "make_bundle",
    "open_transport",
    "refused_port",
    "sha256_file",
]

_TFLITE_SCRIPT = r"""
import sys, numpy as np, tensorflow as tf
out = sys.argv[1]
rng = np.random.default_rng(0)
w = tf.constant(rng.standard_normal((16, 8)).astype(np.float32))
b = tf.constant(rng.standard_normal((8,)).astype(np.float32))
@tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="input")])
def model(x):
    return tf.nn.relu(tf.matmul(x, w) + b)
fn = model.get_concrete_function()
conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
open(out + "/model.fp32.tflite", "wb").write(conv.convert())
conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
def calibration():
    for _ in range(50):
        yield [rng.standard_normal((1, 16)).astype(np.float32)]
conv.representative_dataset = calibration
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
open(out + "/model.int8.tflite", "wb").write(conv.convert())
"""


def open_transport(board: Board, paths: Paths, *, connect_timeout: float = 10.0) -> SSHTransport:
    """A transport that only trusts the project's known_hosts and the board's own key."""
    return SSHTransport(
        board,
        paths.known_hosts,
        connect_timeout=connect_timeout,
        look_for_keys=False,
        allow_agent=False,
        system_host_keys=False,
    )


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port stays bound (never listening), so no other process — another test's sshd picking a
    free port — can take it meanwhile; a port merely found free and closed again can be.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _onnx_model(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["input", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["add"]),
        helper.make_node("Relu", ["add"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def start_tiny_models(out: Path) -> subprocess.Popen[bytes]:
    """Write model.fp32.onnx now; start building the two TFLite models in the background."""
    out.mkdir(parents=True, exist_ok=True)
    _onnx_model(out / "model.fp32.onnx")
    return subprocess.Popen(
        [sys.executable, "-c", _TFLITE_SCRIPT, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )


def finish_tiny_models(proc: subprocess.Popen[bytes], out: Path) -> Path:
    """Wait for :func:`start_tiny_models`; returns the directory with all three models."""
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the tiny TFLite models failed: {err.decode()[-500:]}")
    return out


def build_tiny_models(out: Path) -> Path:
    """Write model.fp32.onnx, model.fp32.tflite, model.int8.tflite into *out*."""
    return finish_tiny_models(start_tiny_models(out), out)


_ARTIFACTS = {
    "onnx-fp32": ("onnx", "fp32", "model.fp32.onnx"),
    "tflite-fp32": ("tflite", "fp32", "model.fp32.tflite"),
    "tflite-int8": ("tflite", "int8", "model.int8.tflite"),
}


def make_bundle(
    models: Path,
    dest: Path,
    bundle_id: str,
    *,
    keys: tuple[str, ...] = tuple(_ARTIFACTS),
    extra: dict[str, bytes] | None = None,
    agent: Path = AGENT_PATH,
) -> Path:
    """A bundle ``dest/bundle_id`` per the contract: manifest, samples, agent, the *keys* artifacts.

    *extra* files are written last (and may replace a model file, e.g. with garbage bytes).
    """
    bundle = dest / bundle_id
    bundle.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(bundle / "samples.npz", input=rng.standard_normal((8, 16)).astype(np.float32))
    shutil.copy(agent, bundle / "edgeship_agent.py")
    for key in keys:
        shutil.copy(models / _ARTIFACTS[key][2], bundle / _ARTIFACTS[key][2])
    for name, data in (extra or {}).items():
        (bundle / name).write_bytes(data)
    artifacts = [_artifact(bundle, key) for key in keys]
    files = {
        p.name: {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
        for p in sorted(bundle.iterdir())
    }
    manifest = {
        "schema": 1,
        "bundle_id": bundle_id,
        "created": "2025-01-01T00:00:00Z",
        "files": files,
        "artifacts": artifacts,
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return bundle


def _artifact(bundle: Path, key: str) -> dict[str, object]:
    fmt, precision, name = _ARTIFACTS[key]
    return {
        "key": key,
        "format": fmt,
        "precision": precision,
        "file": name,
        "size_bytes": (bundle / name).stat().st_size,
        "sha256": sha256_file(bundle / name),
        "inputs": [
            {
                "name": "input",
                "shape": [1, 16],
                "dtype": "float32",
                "layout": "NC",
                "source_name": "input",
                "transpose": None,
            }
        ],
        "outputs": [{"name": "output", "shape": [1, 8], "dtype": "float32"}],
    }
