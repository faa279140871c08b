"""End to end through the real CLI: demo model → bundle → real sshd board → agent → report.

Each test drives ``edgeship`` as a user would (a subprocess), with its own ``EDGESHIP_HOME`` so
nothing of the developer's state is touched; the board runtime's wheels come from the shared
host wheelhouse cache, so they are downloaded once per machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ssh

EDGESHIP = [sys.executable, "-m", "edgeship"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, trained briefly (1 epoch is enough for a >80% digit classifier)."""
    out = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-m", "edgeship.demo", "--out", str(out), "--epochs", "1"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("home")
    environ = {**os.environ, "EDGESHIP_HOME": str(home / ".edgeship"),
               "EDGESHIP_REPORTS": str(home / "reports"), "COLUMNS": "200"}
    yield environ
    subprocess.run([*EDGESHIP, "board", "down", "sim"], env=environ, capture_output=True)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated board with the real `sim` profile, its accuracy gate loosened for the
    briefly-trained model (int8 may cost it ~1 pt; the demo's 8-epoch model loses none)."""
    import yaml

    from profiles import PROFILE_DIR

    folder = tmp_path_factory.mktemp("inventory")
    profile = yaml.safe_load((PROFILE_DIR / "sim.yaml").read_text())
    profile["budgets"]["max_accuracy_drop"] = 0.05
    (folder / "sim.yaml").write_text(yaml.safe_dump(profile))
    (folder / "inventory.yaml").write_text(
        "all:\n  hosts:\n    sim:\n      edgeship_simulated: true\n"
        f"      edgeship_profile: {folder / 'sim.yaml'}\n")
    return folder / "inventory.yaml"


def edgeship(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGESHIP, *args], env=env, capture_output=True, text=True, timeout=900)


def test_deploy_demo_then_redeploy_reuses_everything(demo: Path, env: dict[str, str],
                                                      inventory: Path) -> None:
    args = ("deploy", "--device", "sim", "--inventory", str(inventory), "--model", str(demo / "digits_cnn.pt2"),
            "--data", str(demo / "digits.npz"), "--json")
    first = edgeship(env, *args)
    assert first.returncode == 0, first.stderr
    assert all(ln.startswith("edgeship: ") for ln in first.stderr.splitlines()), first.stderr
    said = [ln for ln in first.stderr.splitlines() if "warning" in ln.lower()]
    assert len(said) == len(set(said)), first.stderr  # each thing said once, no TFLite INFO
    report = json.loads(first.stdout)
    assert {a["key"] for a in report["artifacts"]} == {"onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"}
    card = json.loads((demo / "model_card.json").read_text())
    for art in report["artifacts"]:
        assert art["ok"], art
        assert len(art["sha256"]) == 64 and art["size_bytes"] > 1000
        assert abs(art["accuracy"] - card["test_accuracy"]) <= 0.02
        lat = art["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        assert art["peak_rss_mb"] > 10
        assert art["verdict"] in ("pass", "fail")
    assert report["ship"]["bytes_sent"] > 0 and not report["bundle"]["reused"]
    assert report["device_facts"]["machine"] == os.uname().machine
    saved = sorted(Path(env["EDGESHIP_REPORTS"], "sim").glob("*/report.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["bundle"]["id"] == report["bundle"]["id"]

    again = json.loads(edgeship(env, *args).stdout)
    assert again["bundle"] == {**report["bundle"], "reused": True}
    assert again["ship"]["reused"] and again["ship"]["bytes_sent"] == 0


def test_deploy_with_synthetic_inputs_says_each_warning_once(demo: Path, env: dict[str, str],
                                                              tmp_path: Path) -> None:
    """No --data: synthetic inputs. Each warning once on stderr, nothing but edgeship's voice."""
    profile = tmp_path / "onnx.yaml"
    profile.write_text("arch: x86_64\nartifacts:\n  - {format: onnx, precision: fp32}\n"
                       "  - {format: onnx, precision: int8}\nprofiling: {warmup: 2, runs: 10}\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all:\n  hosts:\n    sim:\n      edgeship_simulated: true\n"
                         f"      edgeship_profile: {profile}\n")
    res = edgeship(env, "deploy", "--device", "sim", "--inventory", str(inventory), "--model",
                   str(demo / "digits_cnn.pt2"), "--input-shape", "input=1x1x28x28", "--json")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert all(ln.startswith("edgeship: ") for ln in lines), res.stderr
    assert sum("synthetic random inputs" in ln for ln in lines) == 1, res.stderr
    said = [ln for ln in lines if "warning" in ln.lower()]
    assert len(said) == len(set(said)), res.stderr


def test_table_output_with_ship_options(demo: Path, env: dict[str, str], inventory: Path) -> None:
    res = edgeship(env, "deploy", "--inventory", str(inventory), "--compress", "--keep", "2",
                   "--retries", "1", "--lock-wait", "5", "--model", str(demo / "digits_cnn.pt2"), "--data", str(demo / "digits.npz"))
    assert res.returncode == 0, res.stderr
    for text in ("tflite-int8", "p99 ms", "peak RSS MB", "report: "):
        assert text in res.stdout


def _one_line_error(res: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    line = [ln for ln in res.stderr.splitlines() if "error:" in ln]
    assert len(line) == 1, res.stderr
    for needle in needles:
        assert needle in line[0], line[0]


def test_unknown_device(env: dict[str, str]) -> None:
    _one_line_error(edgeship(env, "deploy", "--device", "jetsn"), 2, "did you mean 'jetson'")


def test_bad_ship_option_is_a_usage_error(env: dict[str, str]) -> None:
    res = edgeship(env, "deploy", "--keep", "0")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--keep" in res.stderr


def test_missing_model(env: dict[str, str], tmp_path: Path) -> None:
    _one_line_error(edgeship(env, "convert", "--model", str(tmp_path / "nope.pt2")), 3, "nope.pt2")


def test_corrupt_onnx_leaves_nothing_in_the_cache(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    bundles = Path(env["EDGESHIP_HOME"], "bundles")
    before = set(bundles.iterdir()) if bundles.exists() else set()
    _one_line_error(edgeship(env, "convert", "--model", str(bad)), 3, "broken.onnx")
    after = set(bundles.iterdir()) if bundles.exists() else set()
    assert after == before


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening: refused, and no one else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_unreachable_board(demo: Path, env: dict[str, str], tmp_path: Path,
                           closed_port: int) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text("arch: x86_64\nartifacts: [{format: onnx, precision: fp32}]\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"all:\n  hosts:\n    far:\n      ansible_host: 127.0.0.1\n"
                         f"      ansible_port: {closed_port}\n      edgeship_profile: {profile}\n")
    res = edgeship(env, "deploy", "--device", "far", "--inventory", str(inventory),
                   "--model", str(demo / "digits_cnn.pt2"), "--data", str(demo / "digits.npz"))
    _one_line_error(res, 5, "far", "unreachable")
