"""Time to a result → ``bench/results/time_to_result.{json,md}``.

1. A cold ``edgeship convert --profile rpi4`` of a MobileNet-class model: EfficientNet-Lite0
   (``bench.zoo_models:efficientnet_lite0``, ImageNet weights and sample photos from the zoo
   cache, ``make zoo``), in a fresh ``EDGESHIP_HOME`` each run. Recorded per run: wall time, the
   CPU time of the process tree, the load average, and the manifest's ``timings`` (each step);
   the table shows the median of each top-level step. Target: ≤ 60 s.
2. ``make deploy`` of the demo on the built-in simulated board, with the venv present, in a
   scratch directory (``build/bench/ttr-deploy``: its own ``.edgeship``, ``build/demo``,
   ``reports``): cold (none of those, board stopped: trains the demo CNN, converts, provisions,
   ships, profiles) and warm (the same command again). Targets: ≤ 90 s cold, ≤ 15 s warm.

``--baseline FILE`` adds a before column from an earlier run's JSON (the code before the
time-to-result work: ``bench/results/time_to_result.baseline.json``). The machine is a shared
2-core host: each run records the load average next to its time; read medians, not single runs.

    python bench/time_to_result.py [--repeat 3] [--only convert|deploy] [--baseline FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.zoo_models import cache_dir  # noqa: E402

__all__ = ["main", "run_convert", "run_deploy", "step_medians"]

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "build" / "bench" / "time_to_result"
MODEL = "bench.zoo_models:efficientnet_lite0"
TARGETS = {"convert_s": 60.0, "deploy_cold_s": 90.0, "deploy_warm_s": 15.0}


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run *cmd*; its wall and process-tree CPU seconds, the load average, exit code, output."""
    before, load = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2), "exit": proc.returncode,
            "stdout": proc.stdout, "stderr": proc.stderr}


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def run_convert(run: int) -> dict[str, Any]:
    """One cold convert of EfficientNet-Lite0 for rpi4 (exit 8, partial, counts as done)."""
    data = cache_dir() / "data" / "efficientnet-lite0.npz"
    if not data.is_file():
        return {"skipped": f"{data} is missing; run `make zoo ONLY=efficientnet-lite0` first"}
    home = WORK / f"convert-{run}"
    shutil.rmtree(home, ignore_errors=True)
    out = _timed([sys.executable, "-m", "edgeship", "convert", "--profile", "rpi4", "--model",
                  MODEL, "--data", str(data), "--json"], ROOT, _env(EDGESHIP_HOME=str(home)))
    shutil.rmtree(home, ignore_errors=True)
    if out["exit"] not in (0, 8):
        tail = (out["stderr"].strip().splitlines() or ["no output"])[-1]
        return {**_brief(out), "error": tail[:300]}
    manifest = json.loads(out["stdout"])["manifest"]
    return {**_brief(out), "timings": manifest.get("timings"),
            "artifacts": [a["key"] for a in manifest["artifacts"]],
            "left_out": [lo["key"] for lo in manifest.get("left_out", [])]}


def _brief(out: dict[str, Any]) -> dict[str, Any]:
    return {k: out[k] for k in ("wall_s", "cpu_s", "load_before", "load_after", "exit")}


def _scratch() -> Path:
    """A directory where ``make deploy`` runs as in a fresh checkout with the venv present."""
    scratch = WORK / "ttr-deploy"
    scratch.mkdir(parents=True, exist_ok=True)
    links = {"scripts": ROOT / "scripts", "pyproject.toml": ROOT / "pyproject.toml",
             "constraints.txt": ROOT / "constraints.txt", ".venv": Path(sys.prefix)}
    for name, target in links.items():
        if not (scratch / name).exists():
            (scratch / name).symlink_to(target)
    return scratch


def _board_down(scratch: Path) -> None:
    subprocess.run([sys.executable, "-m", "edgeship", "board", "down", "sim"], cwd=scratch,
                   env=_env(), capture_output=True, check=False)


def run_deploy(scratch: Path, cold: bool) -> dict[str, Any]:
    """``make deploy`` (demo, sim) in *scratch*; *cold*: no bundle, demo, reports, board."""
    if cold:
        _board_down(scratch)
        for name in (".edgeship", "build", "reports"):
            shutil.rmtree(scratch / name, ignore_errors=True)
    cmd = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "deploy",
           "-o", ".venv/.installed"]  # the venv is present: never reinstalled here
    out = _timed(cmd, scratch, _env())
    result = _brief(out)
    if out["exit"] != 0:
        result["error"] = (out["stderr"].strip().splitlines() or ["no output"])[-1][:300]
    return result


def step_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each top-level step (``step key``) over the runs that have timings."""
    seen: dict[str, list[float]] = {}
    for run in runs:
        for step in (run.get("timings") or {}).get("steps", []):
            if step["within"] is None:
                label = f"{step['step']} {step['key']}" if step["key"] else step["step"]
                seen.setdefault(label, []).append(step["seconds"])
    return {k: round(statistics.median(v), 2) for k, v in seen.items()}


def _median(runs: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in runs if field in r and "error" not in r]
    return round(statistics.median(values), 2) if values else None


def summarize(convert: list[dict[str, Any]], cold: list[dict[str, Any]],
              warm: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians the table shows."""
    return {"convert_s": _median(convert, "wall_s"), "convert_cpu_s": _median(convert, "cpu_s"),
            "convert_steps": step_medians(convert), "deploy_cold_s": _median(cold, "wall_s"),
            "deploy_warm_s": _median(warm, "wall_s"), "load": [
                r["load_before"] for r in convert + cold + warm if "load_before" in r]}


def render(result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """The Markdown section (see the module doc)."""
    now, before = result["summary"], (baseline or {}).get("summary", {})
    col = " | before" if baseline else ""
    lines = ["## Time to a result", "", f"Median of {result['repeat']} runs on this shared "
             f"2-core host (load average at the start of each run: "
             f"{', '.join(f'{x:.1f}' for x in now['load'])}). Targets: convert ≤ "
             f"{TARGETS['convert_s']:.0f} s cold, `make deploy` ≤ {TARGETS['deploy_cold_s']:.0f}"
             f" s cold and ≤ {TARGETS['deploy_warm_s']:.0f} s warm.", ""]
    if baseline:
        lines += [f"Before: {baseline.get('note', 'the code before this work')}.", ""]
    lines += [f"| | now{col} | target |", f"| --- | ---{' | ---' if baseline else ''} | --- |"]
    for key, label in (("convert_s", f"`convert --profile rpi4` {MODEL.split(':')[1]}, cold"),
                       ("convert_cpu_s", "… CPU time of the process tree"),
                       ("deploy_cold_s", "`make deploy` demo on sim, cold"),
                       ("deploy_warm_s", "`make deploy`, warm (second run)")):
        target = TARGETS.get(key)
        lines.append(f"| {label} | {_s(now.get(key))}{' | ' + _s(before.get(key)) if baseline else ''}"
                     f" | {'≤ %.0f s' % target if target else ''} |")
    if now.get("convert_s") and now.get("convert_cpu_s"):
        lines += ["", f"Convert wall / CPU time: {now['convert_s'] / now['convert_cpu_s']:.1f}× "
                  "(the host's other work); on a quiet host the wall time is close to the CPU "
                  "time (the baseline at load ~1.5: 157 s wall, 170 s CPU)."]
    lines += ["", "Convert steps (manifest `timings`, top level, median seconds):", "",
              f"| step | now{col} |", f"| --- | ---{' | ---' if baseline else ''} |"]
    steps, old = now["convert_steps"], before.get("convert_steps", {})
    for label in list(steps) + [k for k in old if k not in steps]:
        lines.append(f"| {label} | {_s(steps.get(label))}"
                     f"{' | ' + _s(old.get(label)) if baseline else ''} |")
    return "\n".join(lines) + "\n"


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def main() -> None:
    """Run (see the module doc) and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("convert", "deploy"))
    parser.add_argument("--baseline", type=Path,
                        default=RESULTS / "time_to_result.baseline.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "time_to_result.json")
    args = parser.parse_args()
    convert, cold, warm = [], [], []
    for run in range(args.repeat):
        if args.only != "deploy":
            convert.append(run_convert(run))
            print(f"convert {run}: {_brief_line(convert[-1])}", flush=True)
        if args.only != "convert":
            scratch = _scratch()
            cold.append(run_deploy(scratch, cold=True))
            warm.append(run_deploy(scratch, cold=False))
            print(f"deploy {run}: cold {_brief_line(cold[-1])}; warm {_brief_line(warm[-1])}",
                  flush=True)
    if args.only != "convert":
        _board_down(_scratch())
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
              "repeat": args.repeat, "model": MODEL, "convert": convert, "deploy_cold": cold,
              "deploy_warm": warm, "summary": summarize(convert, cold, warm)}
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(result, baseline))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def _brief_line(run: dict[str, Any]) -> str:
    if "skipped" in run or "error" in run:
        return run.get("skipped") or run["error"]
    return f"{run['wall_s']:.1f} s wall, {run['cpu_s']:.1f} s CPU, load {run['load_before']:.1f}"


if __name__ == "__main__":
    main()
