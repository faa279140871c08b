"""Fleet engines benchmark → bench/results/ansible.json + .md.

Eight simulated boards, each its own sshd in its own network namespace (root), one tiny ONNX
model per run (so every run really ships a new release: upload, on-board sha256, atomic switch,
health probe, profiling with 10 runs), deployed by the built-in engine (``--parallel 8``) and by
the Ansible engine (``--forks 8``), alternately, REPEATS times each after one warm-up run. The figure is the fleet
report's ``seconds`` (deploy time after conversion, as both engines measure it); the ratio is
Ansible / built-in. Without root or ansible-core the JSON says why and nothing is measured.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.paths import Paths  # noqa: E402
from devices import load_inventory  # noqa: E402
from edgeship.ansible_engine import AnsibleOptions, ansible_unavailable_reason, deploy_fleet_ansible  # noqa: E402
from edgeship.fleet import deploy_fleet  # noqa: E402
from runtimes import SSHTransport, ensure_runtime, netns  # noqa: E402
from runtimes.sim.netns_board import NetnsBoard, write_group_inventory  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BOARDS = 8
REPEATS = 3
PROFILE = """description: onnx-only profile for the fleet engines benchmark
arch: x86_64
python: "3.11"
artifacts:
  - {format: onnx, precision: fp32}
runtime: {threads: 1, onnx_providers: [CPUExecutionProvider]}
profiling: {warmup: 2, runs: 10}
budgets: {p99_ms: 500}
"""


def tiny_onnx(path: Path, seed: int) -> Path:
    """A [1,16] → [1,8] MatMul model (different weights per seed → a different bundle)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(
        np.random.default_rng(seed).standard_normal((16, 8)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["output"])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8])],
                              [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def start_fleet(base: Path, paths: Paths, subnet) -> Path:
    """BOARDS namespace boards sharing one provisioned venv; returns their inventory file."""
    boards = [NetnsBoard(paths, f"bench{i}", subnet.network_address + 10 + i)
              for i in range(BOARDS)]
    for sim in boards:
        sim.up()
    first = boards[0].board()
    with SSHTransport(first, paths.known_hosts, look_for_keys=False, allow_agent=False,
                      system_host_keys=False, ssh_config=None) as tr:
        ensure_runtime(tr, first)
    for sim in boards[1:]:
        (sim.root / "venv").symlink_to(boards[0].root / "venv")
    (base / "tiny.yaml").write_text(PROFILE)
    return write_group_inventory(boards, "bench", base / "tiny.yaml", base / "inventory.yaml",
                                 python="/usr/bin/python3")


def one_run(engine: str, base: Path, paths: Paths, inventory: Path, seed: int) -> dict:
    from edgeship.deploy import convert

    model = str(tiny_onnx(base / f"m{seed}.onnx", seed))
    convert("bench", model, None, paths=paths, profile=str(base / "tiny.yaml"))  # not timed
    inv = load_inventory(inventory)
    started = time.perf_counter()
    if engine == "builtin":
        out = deploy_fleet("bench", model, None, paths=paths, inventory=inv, parallel=BOARDS)
    else:
        out = deploy_fleet_ansible("bench", model, None, paths=paths, inventory=inv,
                                   options=AnsibleOptions(forks=BOARDS))
    wall = time.perf_counter() - started
    ok = sum(e["ok"] for e in out.report["fleet"])
    print(f"  {engine}: {out.report['seconds']:.1f} s ({ok}/{BOARDS} ok)", flush=True)
    return {"engine": engine, "seed": seed, "seconds": out.report["seconds"],
            "wall_s": round(wall, 3), "ok": ok,
            "per_board_s": [e["seconds"] for e in out.report["fleet"]]}


def measure() -> dict:
    base = Path(tempfile.mkdtemp(prefix="es-bench-ansible-"))
    os.environ["EDGESHIP_REPORTS"] = str(base / "reports")
    paths = Paths(home=base / ".edgeship")
    subnet = netns.free_subnet()
    runs = []
    try:
        inventory = start_fleet(base, paths, subnet)
        for engine in ("builtin", "ansible"):  # warm-up (page cache, first agent run): not kept
            one_run(engine, base, paths, inventory, seed=1000 + len(engine))
        for i in range(REPEATS):
            for j, engine in enumerate(("builtin", "ansible")):
                runs.append(one_run(engine, base, paths, inventory, seed=10 * i + j + 1))
    finally:
        netns.segment_down(subnet)
    med = {e: statistics.median(r["seconds"] for r in runs if r["engine"] == e)
           for e in ("builtin", "ansible")}
    return {"boards": BOARDS, "repeats": REPEATS, "runs": runs,
            "median_s": {k: round(v, 2) for k, v in med.items()},
            "ratio_ansible_over_builtin": round(med["ansible"] / med["builtin"], 2),
            "all_ok": all(r["ok"] == BOARDS for r in runs)}


def _runs(doc: dict, engine: str) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in doc["runs"] if r["engine"] == engine)


def markdown(doc: dict) -> str:
    head = "## Fleet engines: Ansible vs built-in\n\n"
    if doc.get("skipped"):
        return head + f"_Skipped: {doc['skipped']}._\n"
    med = doc["median_s"]
    return head + (
        f"{doc['boards']} simulated boards (own sshd each, one network namespace each), a new "
        f"tiny ONNX release per run (ship + on-board sha256 + atomic switch + health probe + "
        f"10 profiling runs), both engines 8 at a time, alternated after one warm-up run each, {doc['repeats']} runs each; "
        "deploy seconds after conversion (median).\n\n"
        "| engine | median s | runs (s) |\n| --- | ---: | --- |\n"
        + "".join(f"| {e} | {med[e]:.1f} | {_runs(doc, e)} |\n" for e in ("builtin", "ansible"))
        + f"\nAnsible / built-in wall-time ratio: **{doc['ratio_ansible_over_builtin']:.2f}×** "
        f"(every board ok in every run: {doc['all_ok']}). ansible-core "
        f"{doc.get('ansible_core', '?')}.\n")


def main() -> None:
    reason = netns.unavailable_reason() or ansible_unavailable_reason()
    doc: dict = {"machine": platform.machine(), "cores": os.cpu_count(),
                 "date": time.strftime("%Y-%m-%d")}
    if reason:
        doc["skipped"] = reason
    else:
        from ansible.release import __version__ as core

        doc.update(measure(), ansible_core=core)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ansible.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "ansible.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
