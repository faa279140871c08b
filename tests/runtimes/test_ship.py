"""Shipping releases: verified on the board, atomic switch, resumable, locked, pruned."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rt_kit import sha256_file

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from runtimes import SSHTransport, read_bundle, rollback, ship_bundle

pytestmark = pytest.mark.ssh
NewBundle = Callable[..., Path]


def _current(board: Board) -> str:
    return os.readlink(Path(board.root) / "current")


def test_ship_switches_current_to_a_verified_release(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle()
    seen: set[str] = set()
    result = ship_bundle(
        transport, board, bundle, progress=lambda name, done, total: seen.add(name)
    )
    files = sorted(p.name for p in bundle.iterdir())
    assert not result.reused and result.files_sent == len(files) and result.files_skipped == 0
    assert result.bytes_sent == sum(p.stat().st_size for p in bundle.iterdir())
    assert seen == set(files)
    assert _current(board) == f"releases/{bundle.name}"
    remote = transport.run(["sha256sum", *[f"{board.root}/current/{n}" for n in files]]).stdout
    assert [line.split()[0] for line in remote.splitlines()] == [
        sha256_file(bundle / n) for n in files
    ]
    assert not (Path(board.root) / ".lock").exists()
    assert not (Path(board.root) / "releases" / f".{bundle.name}.partial").exists()


def test_second_ship_sends_nothing(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle()
    ship_bundle(transport, board, bundle)
    again = ship_bundle(transport, board, bundle)
    assert again.reused and again.bytes_sent == 0 and again.files_sent == 0
    assert _current(board) == f"releases/{bundle.name}"


def test_corrupted_partial_file_is_resent_alone(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundle = new_bundle()
    partial = f"{board.root}/releases/.{bundle.name}.partial"
    transport.run(["mkdir", "-p", partial])
    for path in bundle.iterdir():
        transport.put(path, f"{partial}/{path.name}")
    transport.put_bytes(b"garbage", f"{partial}/model.fp32.onnx")
    result = ship_bundle(transport, board, bundle)
    assert (result.files_sent, result.bytes_sent) == (
        1,
        (bundle / "model.fp32.onnx").stat().st_size,
    )
    assert sha256_file(Path(board.root) / "current" / "model.fp32.onnx") == sha256_file(
        bundle / "model.fp32.onnx"
    )


class _CorruptingTransport(SSHTransport):
    """Uploads fine, then the 'disk' flips the model file — as failing storage would."""

    def put(self, local: Path | str, remote: str, **kwargs: object) -> int:  # type: ignore[override]
        sent = super().put(local, remote, **kwargs)  # type: ignore[arg-type]
        if remote.endswith("payload.bin"):
            self.put_bytes(b"flipped bits", remote)
        return sent


def test_failed_verification_leaves_current_untouched(
    board: Board, sim_paths: Paths, transport: SSHTransport, new_bundle: NewBundle
) -> None:
    good, bad = new_bundle(), new_bundle(extra={"payload.bin": os.urandom(4096)})
    ship_bundle(transport, board, good)
    with _CorruptingTransport(
        board, sim_paths.known_hosts, look_for_keys=False, allow_agent=False, system_host_keys=False
    ) as flaky:
        with pytest.raises(
            ShipError, match=r"payload\.bin failed sha256 verification.*not switched"
        ):
            ship_bundle(flaky, board, bad)
    assert _current(board) == f"releases/{good.name}"
    assert not (Path(board.root) / "releases" / bad.name).exists()
    assert not (Path(board.root) / ".lock").exists()
    retry = ship_bundle(transport, board, bad)  # resumes: only the bad file goes again
    assert retry.files_sent == 1 and _current(board) == f"releases/{bad.name}"


def test_held_lock_names_its_holder(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    lock = Path(board.root) / ".lock"
    lock.mkdir()
    (lock / "holder").write_text("ci@buildhost pid 4242 since 2025-01-01T00:00:00+00:00\n")
    with pytest.raises(ShipError, match=r"locked by ci@buildhost pid 4242 .* rm -r .*/\.lock"):
        ship_bundle(transport, board, new_bundle())
    assert lock.exists() and not (Path(board.root) / "current").exists()


def test_previous_is_kept_and_old_releases_pruned(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    bundles = [new_bundle(keys=("onnx-fp32",)) for _ in range(4)]
    for bundle in bundles:
        ship_bundle(transport, board, bundle, keep=2)
    releases = Path(board.root) / "releases"
    assert sorted(p.name for p in releases.iterdir()) == sorted(b.name for b in bundles[2:])
    assert os.readlink(Path(board.root) / "previous") == f"releases/{bundles[2].name}"
    ship_bundle(transport, board, bundles[2], keep=2)  # roll back = ship the previous again
    assert _current(board) == f"releases/{bundles[2].name}"
    assert os.readlink(Path(board.root) / "previous") == f"releases/{bundles[3].name}"


def test_file_names_with_shell_metacharacters_ship_verbatim(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    odd = "x; touch pwned $(id) `id` 'q'.txt"
    home_pwned = Path.home() / "pwned"
    existed = home_pwned.exists()
    bundle = new_bundle(keys=("onnx-fp32",), extra={odd: b"harmless"})
    ship_bundle(transport, board, bundle)
    assert (Path(board.root) / "current" / odd).read_bytes() == b"harmless"
    assert home_pwned.exists() == existed


def test_corrupt_or_unsafe_bundles_are_refused_before_connecting(
    tmp_path: Path, new_bundle: NewBundle
) -> None:
    bundle = new_bundle(keys=("onnx-fp32",))
    (bundle / "model.fp32.onnx").write_bytes(b"changed after build")
    with pytest.raises(ShipError, match="differs from its manifest"):
        read_bundle(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../escape"] = {"sha256": "0" * 64, "size_bytes": 1}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShipError, match="unsafe file name"):
        read_bundle(bundle)
    with pytest.raises(ShipError, match="not a bundle"):
        read_bundle(tmp_path)


def test_rollback_swaps_current_and_previous(
    transport: SSHTransport, board: Board, new_bundle: NewBundle
) -> None:
    first, second = new_bundle(keys=("onnx-fp32",)), new_bundle(keys=("onnx-fp32",))
    ship_bundle(transport, board, first)
    with pytest.raises(ShipError, match="no previous release to roll back to"):
        rollback(transport, board)
    ship_bundle(transport, board, second)
    assert rollback(transport, board) == first.name
    assert _current(board) == f"releases/{first.name}"
    assert os.readlink(Path(board.root) / "previous") == f"releases/{second.name}"
    assert not (Path(board.root) / ".lock").exists()
