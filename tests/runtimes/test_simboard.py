"""The simulated board: idempotent up/down, pinned host key, resolve_board."""

from __future__ import annotations

from pathlib import Path

import pytest
from rt_kit import open_transport

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from runtimes import SimBoard, resolve_board

pytestmark = pytest.mark.ssh


def test_up_is_idempotent_pins_the_key_and_down_stops_it(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path)
    sim = SimBoard(paths, "extra")
    board = sim.up()
    try:
        first = sim.status()
        assert first.running and first.port == board.port
        assert sim.up() == board and sim.status().pid == first.pid
        pinned = [
            ln
            for ln in paths.known_hosts.read_text().splitlines()
            if ln.startswith(f"[127.0.0.1]:{board.port} ")
        ]
        assert len(pinned) == 1 and pinned[0].split()[1] == "ssh-ed25519"
        assert board.simulated and Path(board.root).is_absolute()
        assert board.root == str(paths.sim / "extra" / "board")
        with open_transport(board, paths) as tr:
            assert tr.run(["pwd"]).status == 0
    finally:
        assert sim.down() is True
    assert not sim.status().running
    assert sim.down() is False


def test_restart_keeps_port_and_host_key(tmp_path: Path) -> None:
    paths = Paths(home=tmp_path)
    sim = SimBoard(paths, "again")
    port = sim.up().port
    sim.down()
    try:
        assert sim.up().port == port
        assert len(paths.known_hosts.read_text().splitlines()) == 1
    finally:
        sim.down()


def test_resolve_board_fills_a_running_sim(sim: SimBoard, sim_paths: Paths) -> None:
    listed = Board(
        name="sim", host="127.0.0.1", profile="sim", simulated=True, groups=("simulated",)
    )
    live = resolve_board(listed, sim_paths)
    assert (live.port, live.key_file, live.root) == (
        sim.board().port,
        str(sim.client_key),
        str(sim.root),
    )
    assert live.groups == ("simulated",)


def test_resolve_board_says_how_to_start_a_stopped_sim(tmp_path: Path) -> None:
    listed = Board(name="sim", host="127.0.0.1", profile="sim", simulated=True)
    with pytest.raises(
        ShipError,
        match=r"simulated board 'sim' is not running; start it with "
        r"`edgeship board up sim`",
    ):
        resolve_board(listed, Paths(home=tmp_path))


def test_real_boards_pass_through(tmp_path: Path) -> None:
    real = Board(name="pi", host="raspberrypi.local", user="pi", profile="rpi4")
    assert resolve_board(real, Paths(home=tmp_path)) is real


def test_a_port_taken_before_sshd_binds_it_is_replaced(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may take the free port found for sshd before sshd binds it."""
    import socket

    from runtimes.sim import simboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        real = simboard._free_port
        monkeypatch.setattr(simboard, "_free_port", lambda: next(ports, None) or real())
        sim = SimBoard(Paths(home=tmp_path), "race")
        try:
            board = sim.up()
            assert board.port != taken.getsockname()[1] and sim.status().running
        finally:
            sim.down()
