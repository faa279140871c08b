"""Profiler fidelity benchmark → bench/results/profiler.json + .md.

On a simulated board (a real sshd on loopback, provisioned like any board) with the demo
model's bundle shipped as a release, per artifact and side by side in one run:

* the agent's warm p50 (its ``--child`` measurement, as in a deploy) versus an independent bare
  loop of the same artifact on the same board (a separate script run over SSH: same runtime,
  same threads, same inputs, nothing but ``perf_counter`` around each call) — target within 5 %;
* the agent's peak RSS (VmHWM of the measuring process) versus ``/usr/bin/time -v`` of that same
  run (maximum resident set size) — target within 10 %;
* the agent's overhead per inference: agent p50 − bare-loop p50 (the means are in the JSON;
  they carry this machine's outliers).

Rounds alternate agent / bare loop so drift on this shared machine hits both alike; medians of
the rounds are reported.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.paths import Paths, default_paths  # noqa: E402
from profiles import load_profile  # noqa: E402
from runtimes import SimBoard, SSHTransport, ensure_runtime, ship_bundle  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEMO_MODEL, DEMO_DATA = ROOT / "build/demo/digits_cnn.pt2", ROOT / "build/demo/digits.npz"
WARMUP, RUNS, ROUNDS = 200, 3000, 3

BARE_LOOP = r'''
import json, sys, time
import numpy as np
release, key, warmup, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
art = [a for a in json.load(open(release + "/manifest.json"))["artifacts"] if a["key"] == key][0]
spec = art["inputs"][0]
data = np.load(release + "/samples.npz")
x = data[spec["source_name"]] if spec["source_name"] in data.files else data[data.files[0]]
xs = [np.ascontiguousarray(np.transpose(x[i:i + 1], spec["transpose"]) if spec["transpose"]
      else x[i:i + 1]) for i in range(min(32, len(x)))]
path = release + "/" + art["file"]
if art["format"] == "onnx":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    feeds = [{name: v.astype(np.float32)} for v in xs]
    call = lambda f: s.run(None, f)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=1); it.allocate_tensors()
    inp = it.get_input_details()[0]; outs = it.get_output_details()
    scale, zp = inp["quantization"]
    def q(v):
        if inp["dtype"] == np.float32 or not scale:
            return v.astype(inp["dtype"])
        i = np.iinfo(inp["dtype"])
        return np.clip(np.round(v / scale + zp), i.min, i.max).astype(inp["dtype"])
    feeds = [q(v) for v in xs]
    def call(f):
        it.set_tensor(inp["index"], f); it.invoke()
        return [it.get_tensor(o["index"]) for o in outs]
n = len(feeds)
for i in range(warmup):
    call(feeds[i % n])
times = [0.0] * runs
perf = time.perf_counter
for i in range(runs):
    t0 = perf(); call(feeds[i % n]); times[i] = (perf() - t0) * 1000.0
a = np.asarray(times)
print(json.dumps({"p50": float(np.percentile(a, 50)), "mean": float(a.mean())}))
'''


def _transport(board, paths: Paths) -> SSHTransport:
    return SSHTransport(board, paths.known_hosts, look_for_keys=False, allow_agent=False,
                        system_host_keys=False)


def _bundle():
    from converters import build_bundle
    from profiler.agent import board_files

    if not DEMO_MODEL.exists():
        sys.exit("bench/profiler.py: build the demo model first: "
                 ".venv/bin/python -m edgeship.demo --out build/demo")
    return build_bundle(str(DEMO_MODEL), load_profile("sim"), str(DEMO_DATA), default_paths(),
                        board_files=board_files())


def _agent_round(ssh: SSHTransport, python: str, release: str, key: str) -> dict[str, float]:
    argv = ["/usr/bin/time", "-v", python, f"{release}/edgeship_agent.py", "--release", release,
            "--only", key, "--child", "--warmup", str(WARMUP), "--runs", str(RUNS),
            "--threads", "1", "--op-top", "0", "--samples", "0"]
    res = ssh.run(argv, timeout=300)
    result = json.loads(res.stdout)
    maxrss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    if maxrss is None:
        raise RuntimeError(f"/usr/bin/time -v gave no max RSS: {res.stderr[-300:]}")
    return {"p50": result["latency_ms"]["p50"], "mean": result["latency_ms"]["mean"],
            "peak_rss_mb": result["rss_mb"]["peak"], "time_v_mb": int(maxrss[1]) / 1024.0}


def _bare_round(ssh: SSHTransport, python: str, script: str, release: str,
                key: str) -> dict[str, float]:
    res = ssh.run([python, script, release, key, str(WARMUP), str(RUNS)], timeout=300)
    return json.loads(res.stdout)


def measure(ssh: SSHTransport, python: str, release: str, script: str,
            keys: list[str]) -> list[dict]:
    rows = []
    for key in keys:
        agent, bare = [], []
        for _ in range(ROUNDS):
            agent.append(_agent_round(ssh, python, release, key))
            bare.append(_bare_round(ssh, python, script, release, key))
        med = {k: statistics.median(r[k] for r in agent) for k in agent[0]}
        bare_p50 = statistics.median(r["p50"] for r in bare)
        bare_mean = statistics.median(r["mean"] for r in bare)
        rows.append({
            "artifact": key, "agent_p50_ms": med["p50"], "bare_p50_ms": bare_p50,
            "p50_diff_pct": (med["p50"] - bare_p50) / bare_p50 * 100,
            "agent_peak_rss_mb": med["peak_rss_mb"], "time_v_max_rss_mb": med["time_v_mb"],
            "rss_diff_pct": (med["peak_rss_mb"] - med["time_v_mb"]) / med["time_v_mb"] * 100,
            "overhead_us_per_inference": (med["p50"] - bare_p50) * 1000,
            "mean_diff_us": (med["mean"] - bare_mean) * 1000,
            "rounds": {"agent": agent, "bare": bare}})
        print(f"  {key}: agent p50 {med['p50']:.4f} ms vs bare {bare_p50:.4f} ms", flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["## Profiler fidelity (`bench/profiler.py`)", "",
             f"Simulated board (sshd on loopback, {meta['python']}, onnxruntime + ai-edge-litert), demo CNN bundle "
             f"`{meta['bundle']}`; {ROUNDS} alternating rounds × {RUNS} runs (warm-up {WARMUP}), "
             "1 thread; medians of the rounds. Targets: p50 within 5 %, peak RSS within 10 %.", "",
             "| artifact | agent p50 ms | bare loop p50 ms | Δ p50 | agent peak RSS MB | "
             "`time -v` max RSS MB | Δ RSS | agent overhead µs/inference |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        ok_p50 = "✅" if abs(r["p50_diff_pct"]) <= 5 else "❌"
        ok_rss = "✅" if abs(r["rss_diff_pct"]) <= 10 else "❌"
        lines.append(f"| {r['artifact']} | {r['agent_p50_ms']:.4f} | {r['bare_p50_ms']:.4f} | "
                     f"{r['p50_diff_pct']:+.1f} % {ok_p50} | {r['agent_peak_rss_mb']:.1f} | "
                     f"{r['time_v_max_rss_mb']:.1f} | {r['rss_diff_pct']:+.1f} % {ok_rss} | "
                     f"{r['overhead_us_per_inference']:+.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    bundle = _bundle()
    with tempfile.TemporaryDirectory(prefix="edgeship-bench-prof-") as tmp:
        paths = Paths(home=Path(tmp))
        sim = SimBoard(paths, "bench-prof")
        board = sim.up()
        try:
            with _transport(board, paths) as ssh:
                python = ensure_runtime(ssh, board)
                probe = [python, "-c", "import platform; print(platform.python_version())"]
                version = ssh.run(probe).stdout.strip()
                shipped = ship_bundle(ssh, board, bundle.path)
                release = f"{board.root}/releases/{shipped.release_id}"
                script = f"{board.root}/bare_loop.py"
                local = Path(tmp) / "bare_loop.py"
                local.write_text(BARE_LOOP)
                ssh.put(local, script)
                keys = [a["key"] for a in bundle.manifest["artifacts"]]
                started = time.perf_counter()
                rows = measure(ssh, python, release, script, keys)
        finally:
            sim.down()
    meta = {"bundle": bundle.id, "python": f"Python {version}",
            "machine": platform.machine(), "seconds": round(time.perf_counter() - started, 1),
            "date": time.strftime("%Y-%m-%d"), "warmup": WARMUP, "runs": RUNS, "rounds": ROUNDS}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profiler.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / "profiler.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
