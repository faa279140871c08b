"""A simulated Jetson end to end: `edgeship deploy` to a loopback sim board whose JetPack 6 facts
are the captured files (its sysroot) and which has no GPU and no TensorRT.

It must never pass: with a GPU onnxruntime source named, it deploys and every artifact's verdict
is "accelerator requested, ran on CPU" with the reason; with none named, provisioning refuses
with the fix. The two CLI runs are `slow` (they train and convert the demo model); a fast
variant ships a tiny model to the session's sim board and judges the report the same way. The user's "GPU wheel" here is the host's CPU onnxruntime wheel, so the agent's
report of what that build really offers is what decides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from jetson_kit import make_sysroot
from rt_kit import open_transport

from core.paths import Paths
from devices import Board
from profiler import measure_release
from profiler.report import build_report
from profiles import PROFILE_DIR, load_profile
from profiles.schema import Artifact
from runtimes import SimBoard, ship_bundle
from runtimes.provision import wheelhouse_cache

pytestmark = pytest.mark.ssh

EDGESHIP = [sys.executable, "-m", "edgeship"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("jet-home")
    yield home
    SimBoard(Paths(home=home / ".edgeship"), "simjet").down()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jet-demo")
    subprocess.run([sys.executable, "-m", "edgeship.demo", "--out", str(out), "--epochs", "1"],
                   check=True, capture_output=True)
    return out


def _cpu_onnxruntime_wheel(dest: Path) -> Path:
    """The host's own onnxruntime wheel (a CPU build), from the wheel cache or PyPI."""
    found = sorted(wheelhouse_cache().glob("x86_64-cp311-*/onnxruntime-1.31.1-*x86_64.whl"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "onnxruntime==1.31.1", "-d", str(dest)], check=True, capture_output=True)
    return next(dest.glob("onnxruntime-*.whl"))


def _inventory(folder: Path, **hostvars: str) -> Path:
    profile = yaml.safe_load((PROFILE_DIR / "jetson-orin-nano.yaml").read_text())
    profile.update(arch="x86_64", python="3.11")  # the sim board runs on this x86_64 host
    profile["profiling"].update(warmup=5, runs=30)
    profile["budgets"]["max_accuracy_drop"] = 0.05  # the 1-epoch demo model
    (folder / "simjet.yaml").write_text(yaml.safe_dump(profile))
    host = {"edgeship_simulated": True, "edgeship_profile": str(folder / "simjet.yaml"),
            "edgeship_sysroot": str(make_sysroot(folder / "sysroot", "jp6")), **hostvars}
    inventory = folder / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"simjet": host}}}))
    return inventory


def _deploy(home: Path, demo: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGESHIP_HOME": str(home / ".edgeship"),
           "EDGESHIP_REPORTS": str(home / "reports"), "COLUMNS": "250"}
    return subprocess.run([*EDGESHIP, "deploy", "--device", "simjet", "--inventory",
                           str(inventory), "--model", str(demo / "digits_cnn.pt2"), "--data",
                           str(demo / "digits.npz"), "--json"],
                          env=env, capture_output=True, text=True, timeout=1200)


def test_sim_jetson_agent_and_report_without_the_cli(provisioned: Board, sim_paths: Paths,
                                                      new_bundle: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    """The fast path of the same check: ship, profile on the sim Jetson, judge the report."""
    board = provisioned.model_copy(update={"root": str(tmp_path / "root"),
                                           "sysroot": str(make_sysroot(tmp_path / "sys", "jp6"))})
    base = load_profile("jetson-orin-nano")
    profile = base.model_copy(update={
        "artifacts": (Artifact(format="onnx", precision="fp32", runner="tensorrt"),),
        "profiling": base.profiling.model_copy(update={"warmup": 2, "runs": 20})})
    bundle = new_bundle(keys=("onnx-fp32",))
    with open_transport(board, sim_paths) as tr:
        shipped = ship_bundle(tr, board, bundle)
        doc = measure_release(tr, board, profile, shipped.release_id)
    assert doc["device"]["jetson"]["software"]["l4t"] == "36.4.7"
    manifest = {**json.loads((bundle / "manifest.json").read_text()),
                "profile": {"name": profile.name}, "source": {}}
    report = build_report(device="simjet", board={}, manifest=manifest, bundle_reused=False,
                          ship={}, agent=doc, budgets=profile.budgets)
    row = report["artifacts"][0]
    assert report["verdict"] == "fail" and row["ran_on"].endswith("(CPU)")
    assert row["budgets"]["accelerator"]["reason"].startswith(
        "accelerator requested, ran on CPU: TensorRT not installed on the board")


@pytest.mark.slow
def test_simulated_jetson_gets_the_ran_on_cpu_verdict(home: Path, demo: Path,
                                                      tmp_path: Path) -> None:
    wheel = _cpu_onnxruntime_wheel(tmp_path)
    res = _deploy(home, demo, _inventory(tmp_path, edgeship_ort_wheel=str(wheel)))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["verdict"] == "fail"
    software = report["device_facts"]["jetson"]["software"]
    assert (software["l4t"], software["jetpack"], software["tensorrt"]) == (
        "36.4.7", "6.2.1", "10.3.0.30")
    rows = {r["key"]: r for r in report["artifacts"]}
    assert set(rows) == {"onnx-fp16", "onnx-int8", "onnx-fp32"}
    for row in rows.values():
        assert row["ok"] and row["verdict"] == "fail", row
        assert row["ran_on"].endswith("(CPU)") and row["runtime"] == "onnxruntime"
        check = row["budgets"]["accelerator"]
        assert check["ok"] is False and check["value"] == "CPU"
        assert check["reason"].startswith("accelerator requested, ran on CPU: ")
        assert "(a CPU build)" in check["reason"]
        assert row["board_state"]["basis"].startswith("no tegrastats samples")
    assert "TensorRT not installed on the board" in rows["onnx-fp16"]["budgets"]["accelerator"][
        "reason"]
    assert rows["onnx-fp32"]["accelerator"]["requested"] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider"]


@pytest.mark.slow
def test_simulated_jetson_without_a_gpu_runtime_is_refused(home: Path, demo: Path,
                                                           tmp_path: Path) -> None:
    res = _deploy(home, demo, _inventory(tmp_path))
    assert res.returncode == 5, (res.returncode, res.stderr)
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in res.stderr
    for needle in ("is a Jetson (L4T 36.4.7 (JetPack 6.2.1))", "No module named 'tensorrt'",
                   "python3-libnvinfer", "edgeship_ort_wheel="):
        assert needle in errors[0]
