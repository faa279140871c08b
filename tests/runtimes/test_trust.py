"""Host-key trust, ``~/.ssh/config`` (aliases, ProxyJump) and the never-auto-add guard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import ConfigError, ShipError
from devices import Board
from runtimes import SimBoard, SSHTransport, fingerprint
from runtimes.sshconfig import parse_jump, resolve_hops
from runtimes.trust import fetch_host_key, pin_host_key

REPO = Path(__file__).resolve().parents[2]


def test_no_auto_add_or_warning_policy_anywhere() -> None:
    banned = re.compile(r"AutoAddPolicy|WarningPolicy")
    hits = [
        str(path.relative_to(REPO))
        for package in ("runtimes", "edgeship", "devices", "converters", "profiles", "bench")
        if (REPO / package).exists()
        for path in (REPO / package).rglob("*.py")
        if banned.search(path.read_text(errors="replace"))
    ]
    assert hits == [], f"host keys must never be trusted implicitly: {hits}"


@pytest.mark.ssh
def test_trust_shows_the_fingerprint_and_pins_the_key(sim: SimBoard, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    board = sim.board()
    offer = fetch_host_key(board, known)
    expected = sim.host_key.with_suffix(".pub").read_text().split()[1]
    assert (offer.pinned, offer.key.get_base64()) == (None, expected)
    assert offer.fingerprint == fingerprint(offer.key) and not known.exists()  # nothing pinned yet
    pin_host_key(known, offer)
    assert fetch_host_key(board, known).known
    with SSHTransport(board, known, look_for_keys=False, allow_agent=False,
                      system_host_keys=False) as tr:
        assert tr.run(["echo", "trusted"]).stdout == "trusted\n"


@pytest.mark.ssh
def test_a_changed_key_is_flagged_before_pinning(sim: SimBoard, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    port = sim.board().port
    known.write_text(f"[127.0.0.1]:{port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIKbdqZ1t3N2l2cE2A6G0RrS4bqWn9zMr2Qv9mQ3L6xYz\n")
    offer = fetch_host_key(sim.board(), known)
    assert offer.changed and not offer.known
    pin_host_key(known, offer)
    assert len(known.read_text().splitlines()) == 1 and fetch_host_key(sim.board(), known).known


def _real(board: Board, **changes: object) -> Board:
    return board.model_copy(update={"simulated": False, **changes})


def test_ssh_config_alias_user_port_identity(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host pi-lab\n  HostName 10.0.0.7\n  User pi\n  Port 2200\n"
                      "  IdentityFile ~/.ssh/id_lab\n  ProxyJump admin@bastion:2022\n"
                      "Host bastion\n  HostName 192.0.2.1\n")
    board = Board(name="pi", host="pi-lab", profile="rpi4")
    jump, target = resolve_hops(board, config)
    assert (target.host, target.port, target.user) == ("10.0.0.7", 2200, "pi")
    assert target.key_files == (str(Path("~/.ssh/id_lab").expanduser()),)
    assert (jump.host, jump.port, jump.user) == ("192.0.2.1", 2022, "admin")
    explicit = Board(name="pi", host="pi-lab", port=2300, user="root", profile="rpi4")
    assert resolve_hops(explicit, config)[-1].port == 2300  # the inventory wins
    assert resolve_hops(explicit, config)[-1].user == "root"
    with pytest.raises(ConfigError, match="not \\[user@\\]host\\[:port\\]"):
        parse_jump("ssh://x y")


@pytest.mark.ssh
def test_proxyjump_goes_through_a_direct_tcpip_channel(sim: SimBoard, tmp_path: Path) -> None:
    board = sim.board()
    config = tmp_path / "config"
    key = sim.client_key
    config.write_text(
        f"Host behind\n  HostName 127.0.0.1\n  Port {board.port}\n  User {board.user}\n"
        f"  IdentityFile {key}\n  ProxyJump jumpbox\n"
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {board.port}\n  User {board.user}\n"
        f"  IdentityFile {key}\n")
    real = _real(board, host="behind", port=22, user=None, key_file=None)
    known = Path(sim.paths.known_hosts)
    with SSHTransport(real, known, look_for_keys=False, allow_agent=False,
                      system_host_keys=False, ssh_config=config) as tr:
        assert tr.run(["echo", "via jump"]).stdout == "via jump\n"
        assert len(tr._jumps) == 1
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with SSHTransport(real, empty, look_for_keys=False, allow_agent=False,
                      system_host_keys=False, ssh_config=config) as tr:
        with pytest.raises(ShipError, match="via jump host .* is not in .*nothing was sent"):
            tr.run(["true"])
