"""Test kit for the emulated Pi (tests/runtimes/test_arm64_board.py).

- :func:`start_bundle_build`: the demo CNN (one epoch, seeded) and its ``rpi4``-profile bundle,
  built in a *subprocess* (torch + tensorflow stay out of pytest) while the board provisions.
- :data:`OUTPUTS_SCRIPT`: runs every artifact of a release on the samples it ships with, using
  the release's own agent (same feeds, transposes and quantization as profiling), and prints
  ``{key: {"values": [...], "step": quantization step or 0}}``. The same script runs on the board
  (aarch64, the board's runtimes) and on the host (x86_64, the host's runtimes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from profiles import Profile, load_profile
from profiles.schema import ProfilingOptions

__all__ = ["OUTPUTS_SCRIPT", "SAMPLES", "finish_bundle_build", "run_outputs_on_host",
           "start_bundle_build", "test_profile"]

SAMPLES = 4  # what samples.npz ships (converters.data.BOARD_SAMPLES): the board gets no eval set

OUTPUTS_SCRIPT = r"""
import json, sys
release, limit = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, release)
import numpy as np
import edgeship_agent as agent
manifest = json.load(open(release + "/manifest.json"))
samples = np.load(release + "/samples.npz")
out = {}
for art in manifest["artifacts"]:
    runner = agent.RUNNERS[art["format"]](release + "/" + art["file"], 1, ["CPUExecutionProvider"])
    step, zero = 0.0, 0
    details = getattr(runner, "outputs", None)
    if details and np.issubdtype(details[0]["dtype"], np.integer):
        step, zero = details[0]["quantization"]
    ys = []
    for row in agent.prepare_feeds(samples, art["inputs"], limit=limit):
        y = np.asarray(runner(runner.prepare(row))[0])
        ys.append((y.astype(np.float64) - zero) * step if step else y.astype(np.float64))
    out[art["key"]] = {"values": np.concatenate(ys).tolist(), "step": float(step),
                       "runtime": runner.runtime, "version": runner.version}
print(json.dumps(out))
"""

_BUILD = r"""
import json, sys
from pathlib import Path
from converters import build_bundle
from edgeship.demo import build_demo
from profiler.agent import board_files
from core.paths import Paths
sys.path.insert(0, sys.argv[2])
from arm64_kit import test_profile
out = Path(sys.argv[1])
build_demo(out / "demo", epochs=1)
bundle = build_bundle(str(out / "demo" / "digits_cnn.pt2"), test_profile(),
                      str(out / "demo" / "digits.npz"), Paths(home=out / "home"), board_files=board_files())
print(json.dumps({"path": str(bundle.path), "id": bundle.id}))
"""


def test_profile() -> Profile:
    """``rpi4`` with a short profiling run and a long timeout (emulation is ~10-50x slower)."""
    rpi4 = load_profile("rpi4")
    return rpi4.model_copy(update={"profiling": ProfilingOptions(warmup=2, runs=10, op_top=0,
                                                                 timeout_s=1200)})


test_profile.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def start_bundle_build(out: Path) -> subprocess.Popen[str]:
    """Train the demo CNN (1 epoch) and build its rpi4 bundle in the background."""
    log = (out / "build.log").open("w")
    return subprocess.Popen([sys.executable, "-c", _BUILD, str(out), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=log, text=True)


def finish_bundle_build(proc: subprocess.Popen[str], out: Path) -> Path:
    """Wait for the bundle; its directory."""
    stdout, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        tail = (out / "build.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bundle build failed ({proc.returncode}):\n{tail}")
    return Path(json.loads(stdout.strip().splitlines()[-1])["path"])


def run_outputs_on_host(release: Path) -> dict[str, dict[str, object]]:
    """:data:`OUTPUTS_SCRIPT` on the host's runtimes (a subprocess: no TFLite in pytest)."""
    proc = subprocess.run([sys.executable, "-c", OUTPUTS_SCRIPT, str(release), str(SAMPLES)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"host outputs failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
