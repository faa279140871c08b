"""Shipping under pressure: resume by byte offset, cross-release reuse, locks, full disks."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rt_kit import open_transport, sha256_file

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from runtimes import SSHTransport, ship_bundle
from runtimes import ship as ship_mod
from runtimes._remote import BoardLock

pytestmark = pytest.mark.ssh
NewBundle = Callable[..., Path]


def _current(board: Board) -> str:
    return os.readlink(Path(board.root) / "current").removeprefix("releases/")


def test_interrupted_file_resumes_from_its_byte_offset(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",), extra={"payload.bin": os.urandom(600_000)})
    partial = Path(board.root) / "releases" / f".{bundle.name}.partial"
    partial.mkdir(parents=True)
    (partial / "payload.bin").write_bytes((bundle / "payload.bin").read_bytes()[:250_000])
    result = ship_bundle(transport, board, bundle)
    assert result.bytes_resumed == 250_000 and _current(board) == bundle.name
    assert sha256_file(Path(board.root) / "current" / "payload.bin") == \
        sha256_file(bundle / "payload.bin")


def test_a_partial_file_with_wrong_bytes_is_sent_whole(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",), extra={"payload.bin": os.urandom(100_000)})
    partial = Path(board.root) / "releases" / f".{bundle.name}.partial"
    partial.mkdir(parents=True)
    (partial / "payload.bin").write_bytes(b"\0" * 50_000)
    result = ship_bundle(transport, board, bundle)
    assert result.bytes_resumed == 0 and _current(board) == bundle.name


def test_identical_files_of_other_releases_are_linked_not_sent(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, capsys: pytest.CaptureFixture[str]
) -> None:
    big = os.urandom(2_000_000)
    first = new_bundle(extra={"payload.bin": big})
    ship_bundle(transport, board, first)
    second = new_bundle(extra={"payload.bin": big, "note.txt": b"changed"})
    result = ship_bundle(transport, board, second)
    assert result.files_linked >= 5 and result.files_sent == 2  # note.txt + manifest.json
    same = Path(board.root) / "releases"
    assert (same / first.name / "payload.bin").stat().st_ino == \
        (same / second.name / "payload.bin").stat().st_ino
    again = ship_bundle(transport, board, second)
    assert again.reused and again.bytes_sent == 0
    with capsys.disabled():
        print(f"\nredeploy of an unchanged bundle: {again.bytes_sent} payload bytes, "
              f"{again.seconds:.3f} s; new release sharing its model: {result.bytes_sent} bytes "
              f"sent, {result.files_linked} files linked, {result.seconds:.3f} s")


def test_a_held_lock_is_waited_for_then_taken(
    transport: SSHTransport, board: Board, sim_paths: Paths, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",))
    with open_transport(board, sim_paths) as other:
        holder = BoardLock(other, board.root)
        holder.acquire()
        with pytest.raises(ShipError, match=r"is locked by .*@.* pid \d+ .*another deploy"):
            ship_bundle(transport, board, bundle)
        timer = threading.Timer(0.5, holder.release)
        timer.start()
        result = ship_bundle(transport, board, bundle, lock_wait_s=20)
        timer.join()
    assert _current(board) == result.release_id


@pytest.mark.parametrize("note, why", [
    (f"ci@{socket.gethostname()} pid 999999 since 2099-01-01T00:00:00+00:00", "is gone"),
    ("ci@elsewhere pid 1 since 2001-01-01T00:00:00+00:00", "h old"),
])
def test_stale_locks_are_reported_with_the_fix(
    transport: SSHTransport, board: Board, new_bundle: NewBundle, note: str, why: str
) -> None:
    lock = Path(board.root) / ".lock"
    lock.mkdir(parents=True)
    (lock / "holder").write_text(note + "\n")
    with pytest.raises(ShipError, match=rf"looks stale \(.*{why}\).*rm -r .*\.lock") as info:
        ship_bundle(transport, board, new_bundle(keys=("onnx-fp32",)), lock_wait_s=30)
    assert "\n" not in str(info.value) and lock.exists()


def test_two_concurrent_deploys_never_interleave(
    board: Board, sim_paths: Paths, new_bundle: NewBundle
) -> None:
    bundles = [new_bundle(extra={"payload.bin": os.urandom(500_000)}) for _ in range(2)]
    outcome: dict[str, object] = {}

    def deploy(bundle: Path, wait: float) -> None:
        with open_transport(board, sim_paths) as tr:
            try:
                outcome[bundle.name] = ship_bundle(tr, board, bundle, lock_wait_s=wait)
            except ShipError as exc:
                outcome[bundle.name] = exc

    threads = [threading.Thread(target=deploy, args=(b, 60)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(v, Exception) for v in outcome.values()), outcome
    releases = Path(board.root) / "releases"
    assert {_current(board), os.readlink(Path(board.root) / "previous").split("/")[-1]} == \
        {b.name for b in bundles}
    for b in bundles:
        assert sha256_file(releases / b.name / "payload.bin") == sha256_file(b / "payload.bin")
    assert not (Path(board.root) / ".lock").exists()


def test_metacharacters_in_the_board_root_stay_words(
    provisioned: Board, sim_paths: Paths, tmp_path: Path, new_bundle: NewBundle
) -> None:
    root = tmp_path / "r; touch pwned $(touch pwned2) `id`"
    board = provisioned.model_copy(update={"root": str(root)})
    with open_transport(board, sim_paths) as tr:
        ship_bundle(tr, board, new_bundle(keys=("onnx-fp32",)))
    assert (root / "current" / "manifest.json").exists()
    assert not any(p.name.startswith("pwned") for p in Path.home().iterdir())


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs as the board root (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the board root needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_or_read_only_disk_fails_cleanly_and_keeps_the_release(
    provisioned: Board, sim_paths: Paths, tiny_disk: Path, new_bundle: NewBundle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    board = provisioned.model_copy(update={"root": str(tiny_disk)})
    first = new_bundle(keys=("onnx-fp32",), extra={"payload.bin": os.urandom(800_000)})
    big = new_bundle(keys=("onnx-fp32",), extra={"payload.bin": os.urandom(2_500_000)})
    with open_transport(board, sim_paths) as tr:
        ship_bundle(tr, board, first)
        with pytest.raises(ShipError, match=r"not enough space .*nothing was sent") as info:
            ship_bundle(tr, board, big)
        assert "\n" not in str(info.value) and _current(board) == first.name
        monkeypatch.setattr(ship_mod, "check_space", lambda *a, **k: None)  # df lied: ENOSPC
        with pytest.raises(ShipError, match=r"upload of payload\.bin .*failed.*disk may be full"):
            ship_bundle(tr, board, big)
        assert _current(board) == first.name and not (tiny_disk / ".lock").exists()
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
        with pytest.raises(ShipError, match=r"read-only.*permissions and free space"):
            ship_bundle(tr, board, big)
    assert _current(board) == first.name
    assert sha256_file(tiny_disk / "current" / "payload.bin") == sha256_file(first / "payload.bin")
