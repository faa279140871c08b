"""``make zoo``: every corpus model through ``convert`` (rpi4, jetson-orin-nano) and ``deploy`` (sim).

    python bench/zoo.py [--targets rpi4,jetson-orin-nano,sim] [--only MODEL ...] [--resume]

Reads ``<cache>/zoo.yaml`` written by ``bench/zoo_fetch.py``. Each (model, target) runs in its
own child process (``--job``) through the library API, :func:`edgeship.deploy.convert` with the
profile or :func:`edgeship.deploy.deploy` on the built-in simulated board ``sim``, with its own
``EDGESHIP_HOME`` under ``build/zoo`` and a timeout, so one crash or hang costs one cell only.
A failure is recorded with its stage, error class and first line (the full traceback in
``build/zoo/logs``). Results: ``bench/results/zoo.json``, the table in ``bench/results/zoo.md``
and in the marked zoo section of ``BENCHMARKS.md``.
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
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

from bench.zoo_models import cache_dir  # noqa: E402
from bench.zoo_table import render, write_sections  # noqa: E402

__all__ = ["TARGETS", "main", "run_job", "summarize_manifest"]

TARGETS = ("rpi4", "jetson-orin-nano", "sim")
"""Profiles converted for, then the simulated board deployed to."""
WORK = ROOT / "build" / "zoo"
RESULTS = ROOT / "bench" / "results"
JOB_TIMEOUT_S = 1800


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())[:400]


def summarize_manifest(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per artifact the manifest lists as built (fields read with ``.get``)."""
    rows = []
    for art in manifest.get("artifacts", []):
        ver = art.get("verification") or {}
        conv = art.get("converter") or {}
        route = conv.get("route") or "/".join(str(conv[k]) for k in ("tool", "method", "variant")
                                               if conv.get(k))
        rows.append({
            "key": art.get("key"), "built": True, "route": route,
            "precision": art.get("precision"), "file": art.get("file"),
            "max_abs_drift": ver.get("max_abs_drift"), "cosine": ver.get("cosine"),
            "top1_agreement": ver.get("top1_agreement"), "accuracy": ver.get("accuracy"),
            "accuracy_drop": ver.get("accuracy_drop"), "passed": ver.get("passed"),
            "verdict_reason": ver.get("reason"), "outputs_fidelity": ver.get("outputs"),
            "host_p50_ms": (art.get("host_latency_ms") or {}).get("p50"),
            "size_bytes": art.get("size_bytes"), "fallback": art.get("fallback"),
            "quantization": art.get("quantization"), "requested": art.get("requested"),
        })
    return rows


def _left_out(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Artifacts the build left out with a reason (a field other helpers add; list or dict)."""
    raw = manifest.get("left_out") or []
    items = raw.items() if isinstance(raw, dict) else ((None, r) for r in raw)
    out = []
    for key, item in items:
        info = item if isinstance(item, dict) else {"reason": str(item)}
        out.append({"key": info.get("key", key), "built": False, "route": info.get("route"),
                    "reason": info.get("reason") or info.get("message") or json.dumps(info),
                    "delivered_instead": info.get("delivered_instead")})
    return out


def _say(step: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {step}", flush=True)


def _job_convert(entry: dict[str, Any], target: str, shapes: dict[str, tuple[int, ...]]) -> dict:
    from edgeship.deploy import convert

    _, bundle = convert(target, entry["source"], entry.get("data"), profile=target,
                        input_shapes=shapes or None, force=True, progress=_say)
    man = bundle.manifest
    return {"bundle": bundle.id, "artifacts": summarize_manifest(man) + _left_out(man)}


def _job_deploy(entry: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> dict:
    """``deploy`` on ``sim`` in its two library steps, so the manifest (routes, left-outs) and
    the board's report are both at hand."""
    from core.paths import default_paths
    from devices import load_inventory
    from edgeship.deploy import convert, deploy_bundle

    board = load_inventory().resolve("sim")[0]
    profile, bundle = convert("sim", entry["source"], entry.get("data"), profile=board.profile,
                              input_shapes=shapes or None, force=True, progress=_say)
    built = {r["key"]: r for r in summarize_manifest(bundle.manifest)}
    out = deploy_bundle(board, profile, bundle, paths=default_paths(), device="sim",
                        progress=_say)
    rows = []
    for art in out.report.get("artifacts", []):
        rows.append({**built.get(art.get("key"), {"key": art.get("key"), "built": True}),
                     "board_p50_ms": (art.get("latency_ms") or {}).get("p50"),
                     "board_verdict": art.get("verdict"), "board_error": art.get("error")})
    rows += _left_out(bundle.manifest)
    return {"bundle": bundle.id, "report": str(out.report_path), "artifacts": rows}


def run_job(entry: dict[str, Any], target: str) -> dict[str, Any]:
    """Convert (or deploy, for ``sim``) one model; never raises: failures become the result."""
    from converters.load import parse_input_shapes
    from core.errors import EdgeshipError

    start = time.monotonic()
    result: dict[str, Any] = {"model": entry["name"], "target": target}
    try:
        shapes = parse_input_shapes(entry.get("input_shapes") or [])
        result.update(_job_deploy(entry, shapes) if target == "sim"
                      else _job_convert(entry, target, shapes))
        result["ok"] = True
    except Exception as exc:  # recorded per cell: the whole point of the zoo
        internal = not isinstance(exc, EdgeshipError)
        result.update(ok=False, error={
            "class": type(exc).__name__, "internal": internal, "message": _first_line(exc),
            "traceback": traceback.format_exc()[-4000:]})
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _child(model: str, target: str, out: Path) -> None:
    import logging

    import yaml

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    entries = yaml.safe_load((cache_dir() / "zoo.yaml").read_text())["models"]
    entry = next(e for e in entries if e["name"] == model)
    out.write_text(json.dumps(run_job(entry, target), indent=1, default=str) + "\n")


def _spawn(model: str, target: str, jobs: Path) -> dict[str, Any]:
    out = jobs / f"{model}.{target}.json"
    log = WORK / "logs" / f"{model}.{target}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDGESHIP_HOME": str(WORK / "home" / ".edgeship"),
           "EDGESHIP_REPORTS": str(WORK / "reports"), "EDGESHIP_DEBUG": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, str(Path(__file__)), "--job", model, target, str(out)]
    start = time.monotonic()
    try:
        with log.open("w") as fh:
            proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=JOB_TIMEOUT_S)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    if out.is_file() and code == 0:
        return json.loads(out.read_text())
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
    result = {"model": model, "target": target, "ok": False,
              "seconds": round(time.monotonic() - start, 1),
              "error": {"class": "crash" if code != "timeout" else "timeout", "internal": True,
                        "message": f"child exited {code}: {(tail or ['no output'])[0][:300]}"}}
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the zoo (see module doc); ``--job`` is the per-cell child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--only", action="append", help="this model only (repeatable)")
    parser.add_argument("--resume", action="store_true", help="keep finished cells")
    parser.add_argument("--job", nargs=3, metavar=("MODEL", "TARGET", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        _child(args.job[0], args.job[1], Path(args.job[2]))
        return 0
    import yaml

    zoo_yaml = cache_dir() / "zoo.yaml"
    if not zoo_yaml.is_file():
        print(f"zoo: {zoo_yaml} is missing; run `python bench/zoo_fetch.py` first", file=sys.stderr)
        return 2
    entries = yaml.safe_load(zoo_yaml.read_text())["models"]
    jobs = WORK / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for target in args.targets.split(","):
        for entry in entries:
            if args.only and entry["name"] not in args.only:
                continue
            done = jobs / f"{entry['name']}.{target}.json"
            if args.resume and done.is_file():
                continue
            res = _spawn(entry["name"], target, jobs)
            status = "ok" if res.get("ok") else f"FAILED {res['error']['message'][:160]}"
            print(f"zoo: {entry['name']} × {target}: {status} ({res.get('seconds')} s)", flush=True)
    results = [json.loads(p.read_text()) for p in sorted(jobs.glob("*.json"))]
    doc = {"generated": time.strftime("%Y-%m-%d"), "models": entries, "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zoo.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    write_sections(render(entries, results), RESULTS / "zoo.md", ROOT / "BENCHMARKS.md")
    print(f"zoo: wrote {RESULTS / 'zoo.json'}, {RESULTS / 'zoo.md'} and BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
