"""The emulated Raspberry Pi: a simulated board with a real aarch64 Debian userland.

``sim-arm64`` is a :class:`~runtimes.sim.simboard.SimBoard` (same keys, sshd config, board root and
pinned host key) whose ``sshd`` is the *arm64* OpenSSH of a Debian bookworm arm64 root filesystem
(Python 3.11, like Raspberry Pi OS Bookworm), run under qemu-user emulation through binfmt_misc.
Everything that talks to it — probing, provisioning, shipping, the agent — runs aarch64 code.

How the sshd starts (the ``launcher`` in front of ``/usr/sbin/sshd``)::

    [ip netns exec es-<address>]             only when the board has a 10.213.x address
    unshare --mount --propagation private    mounts vanish with the sshd, never leak to the host
      mount proc, rbind /dev, tmpfs /tmp,    NOT /sys: onnxruntime segfaults under qemu with it
        tmpfs /run (+ /run/sshd)
      bind <state dir> at the same path      keys, config, log, pid and board root: host paths
      chroot <rootfs> /usr/sbin/sshd …       are valid inside too, so SimBoard's logic just works

The root filesystem comes from ``scripts/build-arm64-rootfs.sh`` (cached per machine, built once in
~7 min) and is shared read-mostly by every arm64 board; each board's releases, venv and wheelhouse
live in its own state directory. Needs root (binfmt, mounts, chroot).

Memory figures under qemu-user are the emulator's (inflated), and ``ram_mb`` is the host's.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from core.errors import ConfigError, ShipError
from core.paths import Paths
from devices import Board

from .simboard import SimBoard

__all__ = ["ROOTFS_SCRIPT", "Arm64Board", "ensure_rootfs", "is_arm64_profile", "rootfs_path"]

log = logging.getLogger(__name__)

ROOTFS_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-arm64-rootfs.sh"
_BUILD_TIMEOUT_S = 3600.0
# $1 rootfs, $2 state dir, then the sshd argv. /tmp and /run are fresh tmpfs (keeps the shared
# rootfs clean, and /tmp holds the mount point when the state dir itself lives under /tmp).
_CHROOT = ('set -e; R="$1"; D="$2"; shift 2; '
           'mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; '
           'mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"; '
           'mount -t tmpfs -o mode=755 tmpfs "$R/run"; mkdir -p "$R/run/sshd"; '
           'mkdir -p "$R$D"; mount --bind "$D" "$R$D"; exec chroot "$R" "$@"')


def is_arm64_profile(profile: str) -> bool:
    """Whether a simulated board of *profile* needs the arm64 userland (an aarch64 profile)."""
    from profiles import load_profile

    try:
        return load_profile(profile).arch == "aarch64"
    except ConfigError:
        return False


def _script(*args: str, timeout: float | None = 60.0) -> Path:
    if not ROOTFS_SCRIPT.exists():
        raise ShipError(f"{ROOTFS_SCRIPT} is missing; the arm64 board needs edgeship's source tree")
    proc = subprocess.run(["bash", str(ROOTFS_SCRIPT), *args], stdout=subprocess.PIPE,
                          stderr=None if not args else subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise ShipError(f"the arm64 root filesystem is not available ({ROOTFS_SCRIPT.name} "
                        f"{' '.join(args)} exited {proc.returncode}); run "
                        f"`sudo {ROOTFS_SCRIPT}` and read its message")
    return Path(proc.stdout.strip().splitlines()[-1])


def rootfs_path() -> Path:
    """Where this machine's cached arm64 root filesystem is (or will be); builds nothing."""
    return _script("--path")


def ensure_rootfs() -> Path:
    """The cached arm64 root filesystem, built first when missing (~7 min; progress on stderr)."""
    return _script(timeout=_BUILD_TIMEOUT_S)


def _netns_for(address: str | None):  # -> Netns | None
    """The board's network namespace when *address* is a 10.213.x address and namespaces work."""
    if not address:
        return None
    from .netns_board import is_netns_address

    if not is_netns_address(address):
        return None
    from .netns import Netns, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        log.warning("arm64 board at %s runs on the loopback instead: %s", address, reason)
        return None
    return Netns(address)


class Arm64Board(SimBoard):
    """A :class:`SimBoard` whose sshd is Debian arm64's, chrooted into the cached rootfs."""

    def __init__(self, paths: Paths, name: str = "sim-arm64", *, profile: str = "rpi4",
                 address: str | None = None, rootfs: Path | None = None) -> None:
        self.rootfs = Path(rootfs) if rootfs else rootfs_path()
        self.netns = _netns_for(address)
        state = paths.sim / name
        launcher = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _CHROOT,
                    "sh", str(self.rootfs), str(state)]
        if self.netns is not None:
            super().__init__(paths, name, profile=profile, address=str(self.netns.address),
                             port=22, launcher=[*self.netns.prefix, *launcher])
        else:
            super().__init__(paths, name, profile=profile, launcher=launcher)

    def up(self) -> Board:
        """Build the rootfs if needed (once per machine), then start the arm64 sshd; idempotent."""
        if os.geteuid() != 0:
            raise ShipError(f"simulated board {self.name!r} needs root (binfmt_misc, mounts, "
                            "chroot); run as root, or deploy to a real Raspberry Pi")
        if not self.status().running:
            built = ensure_rootfs()
            if built != self.rootfs:
                raise ShipError(f"the arm64 rootfs was built at {built}, not {self.rootfs}; "
                                "pass rootfs= or leave EDGESHIP_ARM64_CACHE unchanged")
            if self.netns is not None:
                self.netns.up()
        return super().up()

    def destroy(self) -> None:
        """Stop the sshd and remove its namespace (the board's files stay)."""
        self.down()
        if self.netns is not None:
            self.netns.down()
