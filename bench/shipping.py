"""Shipping benchmark → bench/results/shipping.json + .md.

Side by side, in one run, on real sshd boards:

* redeploy of an unchanged bundle (payload bytes sent, seconds);
* first upload: edgeship's ``ship_bundle`` (connect + upload + on-board sha256 verification +
  atomic switch) versus OpenSSH ``scp`` of the same files (same key, strict known_hosts), on the
  loopback board and on a namespace board whose link is rate-limited with ``tc tbf``;
* a fleet of N namespace boards (each on its own rate-limited link) versus one board: wall time;
* fault injection: many deploys through a relay that cuts the connection at seeded random points
  (``runtimes.relay.CuttingRelay``): each must complete after resume or fail cleanly, and
  ``current`` is checked file by file after every trial.

Namespace parts need root (``runtimes.sim.netns``); without it they are skipped and the JSON says why.
Only loopback and the 10.213.x.0/24 segment this script creates are ever contacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.paths import Paths  # noqa: E402
from devices import Board  # noqa: E402
from edgeship.fleet import run_fleet  # noqa: E402
from runtimes import (  # noqa: E402
    SimBoard,
    SSHTransport,
    netns,  # noqa: E402
    ship_bundle,
)
from runtimes.sim.netns_board import NetnsBoard  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PAYLOAD = {"model.a.onnx": 3_000_000, "model.b.tflite": 1_000_000, "samples.npz": 200_000}
RATE_MBIT = 16
FLEET = 4
REPEATS = 3
FAULT_TRIALS = 60
FAULT_PAYLOAD = 1_000_000


def make_bundle(dest: Path, bundle_id: str) -> Path:
    """A bundle (manifest + incompressible payload files) with a unique id."""
    folder = dest / bundle_id
    folder.mkdir(parents=True)
    files = {}
    for name, size in PAYLOAD.items():
        data = os.urandom(size)
        (folder / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": size}
    (folder / "manifest.json").write_text(json.dumps({"schema": 1, "bundle_id": bundle_id,
                                                      "files": files, "artifacts": []}))
    return folder


def transport(board: Board, paths: Paths) -> SSHTransport:
    return SSHTransport(board, paths.known_hosts, look_for_keys=False, allow_agent=False,
                        system_host_keys=False, connect_timeout=30)


def edgeship_upload(board: Board, paths: Paths, bundle: Path, root: str) -> tuple[float, int]:
    """Connect and ship to a fresh *root*: ``(seconds, bytes_sent)``."""
    target = board.model_copy(update={"root": root})
    started = time.perf_counter()
    with transport(target, paths) as tr:
        result = ship_bundle(tr, target, bundle)
    return time.perf_counter() - started, result.bytes_sent


def scp_upload(board: Board, paths: Paths, bundle: Path, remote_dir: str) -> float:
    """OpenSSH scp of the same files (board key, strict known_hosts): seconds."""
    Path(remote_dir).mkdir(parents=True)  # the board's filesystem is this machine's
    argv = ["scp", "-q", "-B", "-i", str(board.key_file), "-P", str(board.port),
            "-o", f"UserKnownHostsFile={paths.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null",
            *[str(p) for p in sorted(bundle.iterdir())], f"{board.user}@{board.host}:{remote_dir}/"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def upload_vs_scp(board: Board, paths: Paths, work: Path, tag: str) -> dict:
    """Median of REPEATS first uploads each way (interleaved), fresh bundle id and root each."""
    ours, theirs, sent = [], [], 0
    for i in range(REPEATS):
        bundle = make_bundle(work / "bundles", f"{tag}{i:04d}")
        seconds, sent = edgeship_upload(board, paths, bundle, str(work / f"{tag}-root{i}"))
        ours.append(seconds)
        theirs.append(scp_upload(board, paths, bundle, str(work / f"{tag}-scp{i}")))
    mb = sent / 1e6
    es, sc = statistics.median(ours), statistics.median(theirs)
    return {"bytes": sent, "edgeship_s": round(es, 3), "scp_s": round(sc, 3),
            "edgeship_MBps": round(mb / es, 2), "scp_MBps": round(mb / sc, 2),
            "time_ratio_edgeship_over_scp": round(es / sc, 2)}


def redeploy(board: Board, paths: Paths, work: Path) -> dict:
    bundle = make_bundle(work / "bundles", "redeploy0000")
    root = str(work / "redeploy-root")
    first_s, first_bytes = edgeship_upload(board, paths, bundle, root)
    again = [edgeship_upload(board, paths, bundle, root) for _ in range(REPEATS)]
    return {"first_bytes_sent": first_bytes, "first_s": round(first_s, 3),
            "redeploy_bytes_sent": max(b for _, b in again),
            "redeploy_s": round(statistics.median(s for s, _ in again), 3)}


def fleet(paths: Paths, work: Path, subnet) -> dict:
    sims = [NetnsBoard(paths, f"fleet{i}", subnet.network_address + 20 + i) for i in range(FLEET)]
    boards = [s.up() for s in sims]
    for s in sims:
        s.netns.shape(rate_mbit=RATE_MBIT)
    bundle = make_bundle(work / "bundles", "fleet0000000")

    def ship(tag: str):
        def task(board: Board) -> float:
            return edgeship_upload(board, paths, bundle, str(work / f"{tag}-{board.name}"))[0]
        return task

    started = time.perf_counter()
    one = run_fleet(boards[:1], ship("one"))
    one_s = time.perf_counter() - started
    started = time.perf_counter()
    many = run_fleet(boards, ship("many"), parallel=FLEET)
    many_s = time.perf_counter() - started
    ok = all(r.ok for r in one + many)
    return {"boards": FLEET, "parallel": FLEET, "rate_mbit_per_board": RATE_MBIT, "all_ok": ok,
            "one_board_s": round(one_s, 3), "fleet_s": round(many_s, 3),
            "wall_time_ratio_fleet_over_one": round(many_s / one_s, 2),
            "serial_estimate_ratio": FLEET}


def _current_ok(root: Path) -> str | None:
    """The release ``current`` points at, after checking each file's sha256 (None: no current)."""
    if not (root / "current").exists():
        return None
    manifest = json.loads((root / "current" / "manifest.json").read_text())
    for name, meta in manifest["files"].items():
        digest = hashlib.sha256((root / "current" / name).read_bytes()).hexdigest()
        if digest != meta["sha256"]:
            raise AssertionError(f"corrupt current: {name}")
    return manifest["bundle_id"]


def fault_injection(sim: SimBoard, board: Board, paths: Paths, work: Path) -> dict:
    """FAULT_TRIALS deploys through a cutting relay; tally outcomes; verify `current` each time."""
    import random

    from core.errors import ShipError
    from runtimes.relay import CuttingRelay

    root = work / "fault-root"
    root.mkdir()
    target = board.model_copy(update={"root": str(root)})
    kind, blob = sim.host_key.with_suffix(".pub").read_text().split()[:2]
    rng = random.Random(7)
    tally = {"trials": FAULT_TRIALS, "completed_first_try": 0, "completed_after_resume": 0,
             "clean_failures": 0, "corrupt_current": 0, "cuts": 0, "bytes_resumed": 0}
    started = time.perf_counter()
    for trial in range(FAULT_TRIALS):
        before = _current_ok(root)
        bundle = make_bundle(work / "faults", f"f{trial:015x}")
        (bundle / "model.a.onnx").write_bytes(os.urandom(FAULT_PAYLOAD))  # smaller payload
        manifest = json.loads((bundle / "manifest.json").read_text())
        for name in PAYLOAD:
            data = (bundle / name).read_bytes()
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(),
                                       "size_bytes": len(data)}
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        hopeless = trial % 6 == 5  # each connection cut within 60 kB: must fail cleanly
        cut_range = (2_000, 60_000) if hopeless else (0, int(FAULT_PAYLOAD * 1.5))
        with CuttingRelay(("127.0.0.1", board.port), seed=trial, cuts=5 if hopeless else
                          rng.choice([1, 2, 3, 5]), cut_range=cut_range) as relay:
            with paths.known_hosts.open("a") as fh:
                fh.write(f"[127.0.0.1]:{relay.port} {kind} {blob}\n")
            via = target.model_copy(update={"port": relay.port})
            with transport(via, paths) as tr:
                tr.io_timeout = 5
                try:
                    result = ship_bundle(tr, via, bundle, keep=2, retries=1 if hopeless else 3,
                                         backoff_s=0.05)
                except ShipError:
                    tally["clean_failures"] += 1
                    if _current_ok(root) != before:
                        tally["corrupt_current"] += 1
                    lock = root / ".lock"
                    if lock.exists():  # what the one-line error tells the user to remove
                        for child in lock.iterdir():
                            child.unlink()
                        lock.rmdir()
                else:
                    if _current_ok(root) != result.release_id:
                        tally["corrupt_current"] += 1
                    key = "completed_after_resume" if result.attempts > 1 else "completed_first_try"
                    tally[key] += 1
                    tally["bytes_resumed"] += result.bytes_resumed
            tally["cuts"] += relay.cut_done
    tally["seconds"] = round(time.perf_counter() - started, 1)
    return tally


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
                     "cores": os.cpu_count(), "payload_bytes": sum(PAYLOAD.values()),
                     "repeats": REPEATS}
    with tempfile.TemporaryDirectory(prefix="es-bench-") as tmp:
        work = Path(tmp)
        paths = Paths(home=work / ".edgeship")
        sim = SimBoard(paths, "bench-lo", address="127.0.0.1")
        lo = sim.up()
        try:
            results["redeploy_loopback"] = redeploy(lo, paths, work)
            results["upload_loopback"] = upload_vs_scp(lo, paths, work, "lo")
            results["fault_injection"] = fault_injection(sim, lo, paths, work)
            reason = netns.unavailable_reason()
            if reason is None:
                subnet = netns.free_subnet()
                try:
                    nb = NetnsBoard(paths, "bench-ns", subnet.network_address + 10)
                    board = nb.up()
                    nb.netns.shape(rate_mbit=RATE_MBIT)
                    results["upload_netns_tbf"] = {"rate_mbit": RATE_MBIT,
                                                   **upload_vs_scp(board, paths, work, "ns")}
                    results["fleet"] = fleet(paths, work, subnet)
                finally:
                    netns.segment_down(subnet)
            else:
                results["netns"] = f"skipped: {reason}"
        finally:
            sim.down()
    (RESULTS / "shipping.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "shipping.md").write_text(render(results))
    print(json.dumps(results, indent=2))


def render(r: dict) -> str:
    lines = ["## Shipping", "",
             f"Payload {r['payload_bytes'] / 1e6:.1f} MB of incompressible files in {len(PAYLOAD)} "
             f"files + manifest; median of {r['repeats']} runs; real sshd boards "
             "(loopback, and a network namespace with `tc tbf`). edgeship's time includes "
             "connecting, the on-board sha256 verification and the atomic switch.", "",
             "| measurement | edgeship | OpenSSH scp | ratio (edgeship / scp time) |",
             "| --- | --- | --- | --- |"]
    for key, label in (("upload_loopback", "first upload, loopback"),
                       ("upload_netns_tbf", f"first upload, netns link at {RATE_MBIT} Mbit/s")):
        if key in r:
            u = r[key]
            lines.append(f"| {label} | {u['edgeship_s']:.2f} s ({u['edgeship_MBps']:.1f} MB/s) | "
                         f"{u['scp_s']:.2f} s ({u['scp_MBps']:.1f} MB/s) | "
                         f"{u['time_ratio_edgeship_over_scp']:.2f} |")
    d = r["redeploy_loopback"]
    lines += ["", f"Redeploy of an unchanged bundle (loopback): **{d['redeploy_bytes_sent']} payload "
              f"bytes** sent in {d['redeploy_s']:.2f} s (first upload: {d['first_bytes_sent']} "
              f"bytes in {d['first_s']:.2f} s)."]
    if "fleet" in r:
        f = r["fleet"]
        lines += ["", f"Fleet: {f['boards']} namespace boards, each on its own {f['rate_mbit_per_board']} "
                  f"Mbit/s link, {f['parallel']} at a time: {f['fleet_s']:.2f} s versus "
                  f"{f['one_board_s']:.2f} s for one board — **wall-time ratio "
                  f"{f['wall_time_ratio_fleet_over_one']:.2f}** (serial would be ~{f['boards']}; "
                  f"all ok: {f['all_ok']})."]
    else:
        lines += ["", f"Namespace parts: {r.get('netns')}."]
    fi = r["fault_injection"]
    lines += ["", f"Fault injection ({fi['trials']} deploys of a {FAULT_PAYLOAD / 1e6:.0f} MB "
              f"payload through a relay cutting the connection at seeded random points, "
              f"{fi['cuts']} cuts in all; every 6th trial a link cut within 60 kB that must fail): "
              f"**{fi['completed_after_resume']} completed after resume, "
              f"{fi['completed_first_try']} completed first try, {fi['clean_failures']} failed "
              f"cleanly, {fi['corrupt_current']} corrupt `current`** "
              f"({fi['bytes_resumed']} bytes resumed rather than re-sent; {fi['seconds']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
