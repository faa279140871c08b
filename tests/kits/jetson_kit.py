"""Test kit for the Jetson path: captured JetPack files as a fake probe result or as a sysroot.

``probe_raw("jp6")`` is what the provisioning probe would return on that board (its
``/etc/nv_tegra_release`` and package list from the captures in ``data/jetson``); the Python
modules part (does the system Python import ``tensorrt``?) is given by the test, since no capture
can say it. ``make_sysroot`` lays the same files out as a directory standing in for ``/`` on a
simulated board: ``etc/nv_tegra_release`` and a dpkg database that the real ``dpkg-query`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtimes.jetpack_facts import parse_packages

__all__ = ["DATA", "make_sysroot", "package_text", "probe_raw"]

DATA = Path(__file__).resolve().parent / "jetson_data"


def package_text(jp: str) -> str:
    """Every captured package list of *jp* (``jp5`` / ``jp6``), concatenated."""
    return "\n".join(p.read_text() for p in sorted((DATA / jp).glob("dpkg*.txt")))


def probe_raw(jp: str, modules: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``jetson`` part of a probe result on a board with *jp*'s captured files."""
    return {"tegra_release": (DATA / jp / "nv_tegra_release").read_text(),
            "packages": package_text(jp), "python_modules": modules or {},
            "trtexec": None, "tools": {"nvpmodel": True, "tegrastats": True}}


def make_sysroot(dest: Path, jp: str) -> Path:
    """*dest* with ``etc/nv_tegra_release`` and ``var/lib/dpkg/status`` of *jp*'s captures."""
    (dest / "etc").mkdir(parents=True, exist_ok=True)
    (dest / "etc" / "nv_tegra_release").write_text((DATA / jp / "nv_tegra_release").read_text())
    admin = dest / "var" / "lib" / "dpkg"
    for sub in ("info", "updates"):
        (admin / sub).mkdir(parents=True, exist_ok=True)
    stanzas = [f"Package: {name}\nStatus: install ok installed\nMaintainer: NVIDIA\n"
               f"Architecture: arm64\nVersion: {version}\nDescription: captured\n"
               for name, version in parse_packages(package_text(jp)).items()]
    (admin / "status").write_text("\n".join(stanzas) + "\n")
    (admin / "available").write_text("")
    return dest
