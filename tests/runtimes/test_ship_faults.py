"""Fault injection: the connection to a real sshd cut at seeded random points of a deploy.

Every trial must either complete (after reconnect + resume) or fail with one clean line; after
every trial ``current`` points at a release whose files all match its manifest.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from rt_kit import open_transport, sha256_file

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from runtimes import SimBoard, ship_bundle
from runtimes.relay import CuttingRelay

pytestmark = pytest.mark.ssh
NewBundle = Callable[..., Path]
TRIALS = 20
PAYLOAD = 1_000_000


def pin_relay(sim: SimBoard, known_hosts: Path, port: int) -> None:
    """Trust the sim board's host key at the relay's port (the key is the board's own)."""
    kind, blob = sim.host_key.with_suffix(".pub").read_text().split()[:2]
    with known_hosts.open("a") as fh:
        fh.write(f"[127.0.0.1]:{port} {kind} {blob}\n")


def current_state(board: Board) -> str | None:
    """The release ``current`` points at, after checking every file against its manifest."""
    root = Path(board.root)
    if not (root / "current").exists():
        return None
    release = os.readlink(root / "current").removeprefix("releases/")
    manifest = json.loads((root / "current" / "manifest.json").read_text())
    assert manifest["bundle_id"] == release
    for name, meta in manifest["files"].items():
        assert sha256_file(root / "current" / name) == meta["sha256"], f"corrupt {name}"
    return release


def test_cut_connections_complete_or_fail_cleanly(
    board: Board, sim: SimBoard, sim_paths: Paths, new_bundle: NewBundle, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with open_transport(board, sim_paths) as direct:
        ship_bundle(direct, board, new_bundle(keys=("onnx-fp32",)))
    tally: Counter[str] = Counter()
    rng = random.Random(20250101)
    for trial in range(TRIALS):
        before = current_state(board)
        bundle = new_bundle(keys=("onnx-fp32",), extra={"payload.bin": rng.randbytes(PAYLOAD)})
        # Mostly recoverable cuts anywhere in the deploy; every 6th trial a link too bad to finish
        # (each connection cut within its first 60 kB, one retry) must fail cleanly.
        hopeless = trial % 6 == 5
        cuts = 5 if hopeless else rng.choice([1, 1, 2, 2, 3, 5])
        cut_range = (2_000, 60_000) if hopeless else (0, int(PAYLOAD * 1.2))
        with CuttingRelay(("127.0.0.1", board.port), seed=trial, cuts=cuts,
                          cut_range=cut_range) as relay:
            pin_relay(sim, known, relay.port)
            via = board.model_copy(update={"port": relay.port})
            with open_transport(via, sim_paths, connect_timeout=5) as tr:
                tr.known_hosts = known
                tr.io_timeout = 5
                try:
                    result = ship_bundle(tr, via, bundle, keep=2, retries=1 if hopeless else 3,
                                         backoff_s=0.01)
                except ShipError as exc:
                    msg = str(exc)
                    assert "\n" not in msg and "board 'sim'" in msg and "ship again" in msg, msg
                    tally["clean failures"] += 1
                    assert current_state(board) == before
                    if (Path(board.root) / ".lock").exists():  # as the message would say
                        tally["locks left to remove"] += 1
                        (Path(board.root) / ".lock" / "holder").unlink(missing_ok=True)
                        (Path(board.root) / ".lock").rmdir()
                else:
                    assert current_state(board) == bundle.name == result.release_id
                    key = "completed after resume" if result.attempts > 1 else "completed first try"
                    tally[key] += 1
                    tally["bytes resumed"] += result.bytes_resumed
                tally["cuts made"] += relay.cut_done
        assert not (Path(board.root) / ".lock").exists()
    tally["corrupt"] = 0  # every trial above checked `current` file by file
    with capsys.disabled():
        print(f"\nfault-injection tally ({TRIALS} trials): " + ", ".join(
            f"{k} {v}" for k, v in sorted(tally.items())))
    assert tally["completed after resume"] >= 5 and tally["clean failures"] >= TRIALS // 6
    assert tally["completed after resume"] + tally["completed first try"] + \
        tally["clean failures"] == TRIALS
