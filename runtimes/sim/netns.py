"""Network namespaces for simulated boards: one namespace per board on a private 10.x bridge.

A *segment* is a host bridge owning one ``/24`` (the host is ``.1``); each board is a namespace
named ``es-<address>`` whose ``eth0`` (one end of a veth pair, the other end ``es-v<b.c.d>`` on
the bridge) holds the board's address. Every name starts with ``es-`` so leftovers can be found.

Safety (traffic never leaves the machine):

* an ``unreachable <subnet>`` route (metric 4242) is added *before* the bridge and removed
  *after* it, so when the bridge is missing or down, packets for the subnet fail instead of
  following the default route off the machine;
* namespaces get no default route: a board can only answer its own subnet;
* MACs are fixed (derived from the address), so a re-created board never leaves a stale ARP
  entry behind (one once cost 36 s).

A lossy, rate-limited link (this kernel has no ``netem``): ``tc … tbf`` on both ends of the
board's veth, plus an nftables ``numgen random mod 100 < N drop`` rule in its namespace.

Public API::

    unavailable_reason() -> str | None           why namespaces cannot be used here (None: they can)
    free_subnet() -> IPv4Network                 a 10.213.x.0/24 no route uses yet
    segment_up(subnet) / segment_down(subnet)    the bridge + guard route (idempotent)
    Netns(address).up() / .down() / .exec(argv) / .shape(rate_mbit, loss_pct) / .unshape()
    cleanup(subnet=None) -> list[str]            remove every es- namespace/link/route (in subnet)
    leftovers(subnet=None) -> list[str]          what cleanup would remove
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from core.errors import ShipError

__all__ = ["GUARD_METRIC", "PREFIX", "Netns", "cleanup", "free_subnet", "leftovers",
           "segment_down", "segment_up", "unavailable_reason"]

log = logging.getLogger(__name__)

PREFIX = "es-"
GUARD_METRIC = 4242
_POOL = IPv4Network("10.213.0.0/16")  # every segment is a /24 inside this private range


def unavailable_reason() -> str | None:
    """Why boards in namespaces cannot run here (``None`` when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root; the loopback board is used otherwise)"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            package = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables"}[tool]
            return f"`{tool}` is missing; install it with `apt-get install {package}`"
    probe = _ip("netns", "list", check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()[-200:]}"
    return None


def free_subnet(first: int = 100, last: int = 199) -> IPv4Network:
    """A ``10.213.<k>.0/24`` (``first <= k <= last``) that no route of this machine uses."""
    used = set(_ip("-4", "route", "show", "table", "all", check=False).stdout.split())
    free = [net for k in range(first, last + 1)
            if str(net := IPv4Network(f"10.213.{k}.0/24")) not in used]
    if free:  # at random: two test runs starting at once should not pick the same one
        return random.choice(free)
    raise ShipError(f"no free 10.213.{first}-{last}.0/24 subnet left; remove leftovers with "
                    "`python -m runtimes.sim.netns cleanup`")


def bridge_name(subnet: IPv4Network) -> str:
    """``es-b213.7`` for 10.213.7.0/24 (interface names are at most 15 characters)."""
    b, c = subnet.network_address.packed[1:3]
    return f"{PREFIX}b{b}.{c}"


def segment_up(subnet: IPv4Network | str) -> IPv4Network:
    """Create the guard route, the bridge (fixed MAC) and the host's ``.1`` address; idempotent."""
    net = _check_subnet(subnet)
    guard = ["route", "add", "unreachable", str(net), "metric", str(GUARD_METRIC)]
    if f"unreachable {net} " not in _ip("route", "show", "table", "main", str(net)).stdout + " ":
        _ip(*guard)
    bridge = bridge_name(net)
    if not _exists(bridge):
        _ip("link", "add", bridge, "address", _mac(net.network_address + 1), "type", "bridge")
    _ip("addr", "replace", f"{net.network_address + 1}/24", "dev", bridge)
    _ip("link", "set", bridge, "up")
    return net


def segment_down(subnet: IPv4Network | str) -> None:
    """Remove the segment's namespaces, its bridge, then its guard route; idempotent."""
    net = _check_subnet(subnet)
    for name in _namespaces():
        if _address_of(name) in net:
            Netns(_address_of(name)).down()  # type: ignore[arg-type]
    _ip("link", "del", bridge_name(net), check=False)
    _ip("route", "del", "unreachable", str(net), "metric", str(GUARD_METRIC), check=False)


@dataclass(frozen=True)
class Netns:
    """A board's namespace ``es-<address>`` on the segment of ``<address>/24``."""

    address: IPv4Address

    def __init__(self, address: IPv4Address | str) -> None:
        object.__setattr__(self, "address", IPv4Address(address))
        _check_subnet(self.subnet)
        if self.address in (self.subnet.network_address, self.subnet.network_address + 1,
                            self.subnet.broadcast_address):
            raise ValueError(f"{self.address} is reserved on {self.subnet} (.0, .1 and .255)")

    @property
    def subnet(self) -> IPv4Network:
        return IPv4Network(f"{self.address}/24", strict=False)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.address}"

    @property
    def veth(self) -> str:
        """The host end of the veth pair, ``es-v213.7.11`` (the board end is ``eth0``)."""
        return f"{PREFIX}v" + ".".join(str(x) for x in self.address.packed[1:])

    @property
    def mac(self) -> str:
        return _mac(self.address)

    @property
    def prefix(self) -> list[str]:
        """``ip netns exec <name>``: prepend it to run a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def up(self) -> Netns:
        """Create the segment (if needed), the namespace, the veth pair and the address."""
        segment_up(self.subnet)
        if self.name not in _namespaces():
            _ip("netns", "add", self.name)
        if not _exists(self.veth):
            _ip("link", "add", self.veth, "address", _mac(self.address, host_side=True), "type",
                "veth", "peer", "name", "eth0", "address", self.mac, "netns", self.name)
        _ip("link", "set", self.veth, "master", bridge_name(self.subnet), "up")
        _ip("-n", self.name, "addr", "replace", f"{self.address}/24", "dev", "eth0")
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def down(self) -> None:
        """Stop every process in the namespace, delete it and its veth; idempotent."""
        if self.name in _namespaces():
            _kill(self.pids())
            _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.veth, check=False)

    def pids(self) -> list[int]:
        res = _ip("netns", "pids", self.name, check=False)
        return [int(p) for p in res.stdout.split() if p.isdigit()]

    def exec(self, argv: list[str], *, check: bool = True, timeout: float = 30.0,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside the namespace and wait for it."""
        return _run([*self.prefix, *argv], check=check, timeout=timeout, input=input)

    def shape(self, *, rate_mbit: float | None = None, loss_pct: int = 0) -> None:
        """Limit the link to *rate_mbit* (both ways, tbf) and drop *loss_pct* % of packets."""
        self.unshape()
        if rate_mbit is not None:
            tbf = ["root", "tbf", "rate", f"{int(rate_mbit * 1000)}kbit", "burst", "32kbit",
                   "latency", "400ms"]
            _run(["tc", "qdisc", "replace", "dev", self.veth, *tbf])
            self.exec(["tc", "qdisc", "replace", "dev", "eth0", *tbf])
        if loss_pct:
            if not 0 < loss_pct < 100:
                raise ValueError(f"loss_pct must be within 1..99 (got {loss_pct})")
            drop = f"numgen random mod 100 < {loss_pct} drop"
            self.exec(["nft", "-f", "-"], input=(
                "table inet es_link {\n"
                f"  chain in {{ type filter hook input priority 0; policy accept; {drop}; }}\n"
                f"  chain out {{ type filter hook output priority 0; policy accept; {drop}; }}\n"
                "}\n"))

    def unshape(self) -> None:
        """Back to a clean link; idempotent."""
        _run(["tc", "qdisc", "del", "dev", self.veth, "root"], check=False)
        self.exec(["tc", "qdisc", "del", "dev", "eth0", "root"], check=False)
        self.exec(["nft", "delete", "table", "inet", "es_link"], check=False)


def leftovers(subnet: IPv4Network | str | None = None) -> list[str]:
    """Names of ``es-`` namespaces, links and guard routes (only *subnet*'s when given)."""
    net = None if subnet is None else _check_subnet(subnet)
    return [name for name, where in _inventory() if net is None or where == net]


def cleanup(subnet: IPv4Network | str | None = None) -> list[str]:
    """Remove every ``es-`` namespace, link and guard route (only *subnet*'s when given)."""
    net = None if subnet is None else _check_subnet(subnet)
    found = _inventory()
    for where in sorted({w for _, w in found if net is None or w == net}):
        segment_down(where)
    return [name for name, where in found if net is None or where == net]


# -- internals ------------------------------------------------------------------------------
def _check_subnet(subnet: IPv4Network | str) -> IPv4Network:
    net = IPv4Network(subnet, strict=False)
    if net.prefixlen != 24 or not net.subnet_of(_POOL):
        raise ValueError(f"{subnet} is not a /24 inside {_POOL} (boards live only there)")
    return net


def _inventory() -> list[tuple[str, IPv4Network]]:
    """Every ``es-`` namespace, link and guard route of this machine, with its /24."""
    found = [(n, _slash24(_address_of(n))) for n in _namespaces()]
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(": ")[1].split("@")[0] if ": " in line else ""
        if name.startswith(f"{PREFIX}v") or name.startswith(f"{PREFIX}b"):
            parts = name[len(PREFIX) + 1:].split(".")
            address = _address_of(PREFIX + ".".join(["10", *parts, *(["0"] * (3 - len(parts)))]))
            found.append((name, _slash24(address)))
    for line in _ip("route", "show", "table", "main", check=False).stdout.splitlines():
        words = line.split()
        if words[:1] == ["unreachable"] and f"metric {GUARD_METRIC}" in line:
            found.append((f"route unreachable {words[1]}", _slash24(_address_of(
                PREFIX + words[1].split("/")[0]))))
    return [(name, net) for name, net in found if net is not None]


def _slash24(address: IPv4Address | None) -> IPv4Network | None:
    return None if address is None else IPv4Network(f"{address}/24", strict=False)


def _address_of(name: str) -> IPv4Address | None:
    try:
        address = ipaddress.ip_address(name[len(PREFIX):]) if name.startswith(PREFIX) else None
    except ValueError:
        return None
    return address if isinstance(address, IPv4Address) and address in _POOL else None


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def _exists(link: str) -> bool:
    return _ip("link", "show", link, check=False).returncode == 0


def _mac(address: IPv4Address, host_side: bool = False) -> str:
    """``02:e5:`` + the address bytes: locally administered, fixed per board (host end: 02:e6)."""
    tail = ":".join(f"{x:02x}" for x in address.packed)
    return f"02:{'e6' if host_side else 'e5'}:{tail}"


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in pids if _signal(p, sig)]
        deadline = time.monotonic() + 2
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _signal(p, 0)]
            time.sleep(0.02)
        if not alive:
            return
        pids = alive


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    if sig == 0:  # reaped or a zombie: gone for our purpose
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(") ", 1)[-1][:1] != "Z"
        except OSError:
            return False
    return True


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *args], check=check)


def _run(argv: list[str], *, check: bool = True, timeout: float = 30.0,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise ShipError(f"`{' '.join(argv)}` failed ({proc.stderr.strip()[-300:]}); "
                        "network namespaces need root and iproute2/nftables")
    return proc


def main(argv: list[str] | None = None) -> int:
    """``python -m runtimes.sim.netns list|cleanup [SUBNET]``: show or remove ``es-`` leftovers."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("list", "cleanup") or len(args) > 2:
        print("usage: python -m runtimes.sim.netns list|cleanup [10.213.N.0/24]", file=sys.stderr)
        return 2
    subnet = args[1] if len(args) == 2 else None
    names = leftovers(subnet) if args[0] == "list" else cleanup(subnet)
    print("\n".join(names) if names else "no es- namespaces, links or guard routes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
