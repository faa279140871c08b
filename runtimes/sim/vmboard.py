"""The arm64 board as a full ``qemu-system-aarch64`` VM: real aarch64 kernel, real memory figures.

:class:`VmBoard` is a :class:`~runtimes.sim.simboard.SimBoard` (same keys, board root and pinned host
key) whose sshd runs inside a ``-M virt -cpu cortex-a72 -smp 2 -m 2048`` VM (a 2 GB Pi 4) booted
from the files ``scripts/build-arm64-vm.sh`` builds once per machine: a Debian arm64 kernel +
initrd and an ext4 disk made from a copy of the cached arm64 rootfs. Unlike ``sim-arm64``
(qemu-user), ``/proc/meminfo``, RSS and ``ram_mb`` are the VM's own.

How it is wired::

    qemu-system-aarch64 (TCG: no arm64 KVM on an x86 host), daemonized, pid in <state>/qemu.pid
      -drive disk.img,snapshot=on            the shared image is never written
      -virtfs <state> as 9p tag "state"      mounted in the guest at the SAME path, so keys,
                                             config, sshd log and the board root (releases,
                                             venv, wheelhouse) are host files, kept across boots
      -netdev user,hostfwd=tcp:127.0.0.1:PORT-:22   loopback only
      -serial file:<state>/console.log       read it when the boot fails

``down()`` stops qemu (SIGTERM); nothing on the throwaway disk needs saving. Needs root
(9p ``security_model=none`` passes the host's file modes through).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from core.errors import ShipError
from core.paths import Paths
from devices import Board

from .._remote import pid_alive
from .simboard import SimBoard, SimStatus, _free_port, _port_free, _read_int

__all__ = ["QEMU", "VM_SCRIPT", "VmBoard", "ensure_vm_image", "vm_image_path"]

log = logging.getLogger(__name__)

QEMU = "qemu-system-aarch64"
VM_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-arm64-vm.sh"
_BUILD_TIMEOUT_S = 3600.0
_BOOT_TIMEOUT_S = 300.0  # TCG on 2 shared cores; a quiet machine boots in well under a minute


def _script(*args: str, timeout: float) -> Path:
    if not VM_SCRIPT.exists():
        raise ShipError(f"{VM_SCRIPT} is missing; the arm64 VM board needs edgeship's source tree")
    proc = subprocess.run(["bash", str(VM_SCRIPT), *args], stdout=subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise ShipError(f"the arm64 VM image is not available ({VM_SCRIPT.name} exited "
                        f"{proc.returncode}); run `sudo {VM_SCRIPT}` and read its message")
    return Path(proc.stdout.strip().splitlines()[-1])


def vm_image_path() -> Path:
    """Where this machine's VM boot files are (or will be); builds nothing."""
    return _script("--path", timeout=60.0)


def ensure_vm_image() -> Path:
    """The VM boot files (vmlinuz, initrd.img, disk.img), built first when missing."""
    return _script(timeout=_BUILD_TIMEOUT_S)


class VmBoard(SimBoard):
    """A :class:`SimBoard` whose sshd runs in an aarch64 VM with *memory_mb* of RAM."""

    def __init__(self, paths: Paths, name: str = "sim-arm64-vm", *, profile: str = "rpi4",
                 memory_mb: int = 2048, cpus: int = 2, image: Path | None = None,
                 boot_timeout_s: float = _BOOT_TIMEOUT_S) -> None:
        super().__init__(paths, name, profile=profile)
        self.memory_mb, self.cpus = memory_mb, cpus
        self.image = Path(image) if image else None
        self.boot_timeout_s = boot_timeout_s
        self.boot_s: float | None = None  # seconds the last boot took (qemu start -> sshd)

    @property
    def console_log(self) -> Path:
        """The VM's serial console (kernel messages, the init script's output)."""
        return self.dir / "console.log"

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self) -> Board:
        """Boot the VM if it is not running (idempotent), wait for its sshd, pin its host key."""
        if os.geteuid() != 0:
            raise ShipError(f"VM board {self.name!r} needs root (9p share of its state dir); "
                            "run as root, or use the `sim-arm64` board")
        if shutil.which(QEMU) is None:
            raise ShipError(f"{QEMU} is missing; install it with `apt-get install qemu-system-arm` "
                            f"(or run `sudo {VM_SCRIPT}`)")
        if not self.status().running:
            image = self.image or ensure_vm_image()
            started = time.perf_counter()
            self._prepare()
            port = self._boot(image)
            self.boot_s = time.perf_counter() - started
            log.info("VM board %r up on 127.0.0.1:%d in %.1f s", self.name, port, self.boot_s)
        self._pin_host_key(self._port())
        return self.board()

    def down(self) -> bool:
        """Stop the VM; returns whether it was running. Its state dir stays."""
        pid = self._qemu_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        (self.dir / "qemu.pid").unlink(missing_ok=True)
        return True

    def status(self) -> SimStatus:
        """Running means: qemu is alive *and* the guest's sshd sends its banner."""
        pid, port = self._qemu_pid(), _read_int(self.dir / "port")
        running = pid is not None and port is not None and _ssh_banner(port)
        return SimStatus(self.name, running, port, pid if running else None, self.dir)

    # -- internals --------------------------------------------------------------------------
    def _qemu_pid(self) -> int | None:
        pid = _read_int(self.dir / "qemu.pid")
        if pid is None or not pid_alive(pid):
            return None
        try:
            return pid if QEMU.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() else None
        except OSError:
            return None

    def _vm_config(self) -> Path:
        config = self.dir / "vm_sshd_config"
        config.write_text("\n".join([
            "ListenAddress 0.0.0.0", "Port 22", f"HostKey {self.host_key}",
            "PidFile /run/sshd.pid", f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no",
            "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "MaxStartups 30:50:100",
            "MaxSessions 30", "UseDNS no", "SetEnv SHLVL=1", "",
        ]))
        return config

    def _argv(self, image: Path, port: int) -> list[str]:
        state = str(self.dir.resolve())
        if any(ch.isspace() for ch in state) or "," in state:
            raise ShipError(f"VM board state dir {state!r} has a space or comma; use another "
                            "EDGESHIP home")
        append = f"root=/dev/vda ro console=ttyAMA0 quiet edgeship.state={state}"
        return [QEMU, "-M", "virt", "-cpu", "cortex-a72", "-smp", str(self.cpus),
                "-m", str(self.memory_mb), "-accel", "tcg,thread=multi", "-display", "none",
                "-monitor", "none", "-serial", f"file:{self.console_log}", "-no-reboot",
                "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
                "-append", append,
                "-drive", f"file={image / 'disk.img'},format=raw,if=virtio,snapshot=on",
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
                "-device", "virtio-net-pci,netdev=n0,romfile=",
                "-virtfs", f"local,path={state},mount_tag=state,security_model=none,id=state",
                "-pidfile", str(self.dir / "qemu.pid"), "-daemonize"]

    def _boot(self, image: Path) -> int:
        previous = _read_int(self.dir / "port")
        port = previous if previous is not None and _port_free(previous) else _free_port()
        (self.dir / "port").write_text(f"{port}\n")
        (self.dir / "address").write_text("127.0.0.1\n")
        self._vm_config()
        for stale in (self.console_log, self.log_file):
            stale.unlink(missing_ok=True)
        proc = subprocess.run(self._argv(image, port), capture_output=True, text=True)
        if proc.returncode != 0:
            raise ShipError(f"VM board {self.name!r}: qemu refused to start "
                            f"({proc.stderr.strip()[-300:]})")
        deadline = time.monotonic() + self.boot_timeout_s
        while not _ssh_banner(port):
            if self._qemu_pid() is None or time.monotonic() > deadline:
                self.down()
                raise ShipError(f"VM board {self.name!r}: no sshd on 127.0.0.1:{port} within "
                                f"{self.boot_timeout_s:g} s; console: {self._console_tail()}")
            time.sleep(0.5)
        return port

    def _console_tail(self) -> str:
        try:
            lines = self.console_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no console log)"
        return " | ".join(lines[-8:]) or "(empty console log)"


def _ssh_banner(port: int) -> bool:
    """Whether an SSH server answers on the loopback *port* (qemu's hostfwd accepts at once,
    before the guest listens: only the banner proves the sshd is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.settimeout(3)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False
