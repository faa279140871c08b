"""The SSH transport against a real sshd on loopback: host keys, errors, quoting, files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rt_kit import open_transport, refused_port

from core.errors import RemoteCommandError, ShipError
from core.paths import Paths
from devices import Board
from runtimes import CommandTimeout, SimBoard, SSHTransport

pytestmark = pytest.mark.ssh


def _with_known_hosts(board: Board, known_hosts: Path) -> SSHTransport:
    return SSHTransport(
        board, known_hosts, look_for_keys=False, allow_agent=False, system_host_keys=False
    )


def test_unknown_host_key_is_refused_and_nothing_is_sent(sim: SimBoard, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = tmp_path / "should-not-exist"
    with _with_known_hosts(sim.board(), empty) as tr:
        with pytest.raises(
            ShipError, match=r"host key ssh-ed25519 SHA256:\S+ is not in .*ssh-keyscan"
        ):
            tr.put(__file__, str(target))
    assert not target.exists()
    assert empty.read_text() == ""  # never added silently


def test_changed_host_key_is_refused(sim: SimBoard, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sim.board().port} {kind} {blob}\n")
    with _with_known_hosts(sim.board(), known) as tr:
        with pytest.raises(ShipError, match=r"presented host key SHA256:\S+ but .* pins SHA256:"):
            tr.run(["true"])


def test_connection_refused_is_one_actionable_line(sim: SimBoard, sim_paths: Paths) -> None:
    with refused_port() as port, open_transport(
            dead := sim.board().model_copy(update={"port": port}), sim_paths,
            connect_timeout=3) as tr:
        with pytest.raises(ShipError) as info:
            tr.run(["true"])
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (
        f"board 'sim' (127.0.0.1:{dead.port}) unreachable: connection refused; is it up? "
        "try `edgeship board up sim` / check the inventory"
    )


def test_wrong_key_gives_an_auth_hint(sim: SimBoard, sim_paths: Paths, tmp_path: Path) -> None:
    stranger = tmp_path / "id_stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    board = sim.board().model_copy(update={"key_file": str(stranger)})
    with open_transport(board, sim_paths) as tr:
        with pytest.raises(ShipError, match="authentication failed .*authorized_keys"):
            tr.run(["true"])


def test_metacharacters_in_arguments_are_not_executed(
    transport: SSHTransport, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    for name in (
        f"x; touch {pwned}",
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        f"a' && touch {pwned} '",
    ):
        assert transport.run(["echo", name]).stdout == name + "\n"
    names = ["x; touch pwned", "$(touch pwned)", "`touch pwned`", "a' && touch pwned '", "*"]
    home_pwned = Path.home() / "pwned"
    existed = home_pwned.exists()
    for name in names:
        transport.run(["touch", str(tmp_path / name)])
    assert not pwned.exists() and home_pwned.exists() == existed
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(names)


def test_shell_strings_are_refused(transport: SSHTransport) -> None:
    with pytest.raises(TypeError, match="list of arguments"):
        transport.run("echo hi")  # type: ignore[arg-type]


def test_nonzero_exit_raises_with_output(transport: SSHTransport) -> None:
    with pytest.raises(RemoteCommandError) as info:
        transport.run(["sh", "-c", "echo out; echo boom >&2; exit 3"])
    err = info.value
    assert (err.status, err.stdout, err.stderr) == (3, "out\n", "boom\n")
    assert "exited 3: boom" in str(err)
    assert transport.run(["false"], check=False).status == 1


def test_timeout_is_a_ship_error_and_a_timeout_error(transport: SSHTransport) -> None:
    with pytest.raises(CommandTimeout) as info:
        transport.run(["sleep", "5"], timeout=0.3)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, ShipError)
    assert transport.run(["echo", "still usable"]).stdout == "still usable\n"


def test_stdin_input_and_script_arguments(transport: SSHTransport) -> None:
    assert transport.run(["cat"], input=b"hello board").stdout == "hello board"
    assert transport.run_script('printf "%s|" "$@"', "a b", "$HOME").stdout == "a b|$HOME|"


def test_put_get_roundtrip_with_progress(transport: SSHTransport, tmp_path: Path) -> None:
    src = tmp_path / "payload.bin"
    src.write_bytes(b"\x00\x01" * 300_000)
    seen: list[tuple[int, int]] = []
    remote = f"{transport.board.root}/payload.bin"
    assert (
        transport.put(src, remote, progress=lambda done, total: seen.append((done, total)))
        == 600_000
    )
    assert seen[-1] == (600_000, 600_000)
    back = tmp_path / "back.bin"
    transport.get(remote, back)
    assert back.read_bytes() == src.read_bytes()


def test_close_is_safe_twice_and_reconnects_lazily(board: Board, sim_paths: Paths) -> None:
    tr = open_transport(board, sim_paths)
    tr.close()  # never opened
    assert tr.run(["true"]).status == 0
    tr.close()
    tr.close()
    assert tr.run(["echo", "again"]).stdout == "again\n"
    tr.close()
