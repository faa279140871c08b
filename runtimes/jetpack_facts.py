"""What JetPack a board runs: ``/etc/nv_tegra_release`` and package lists → L4T, JetPack, CUDA,
cuDNN, TensorRT versions.

Pure text-in, dict-out (like the other parsers), tested on captures from real JetPack 5 and 6
boards (``tests/kits/jetson_data/``). Package lists are accepted in the three shapes field
engineers paste: ``dpkg -l`` lines (``ii  name  version  arch  description``), ``apt list
--installed`` lines (``name/suite,now version arch [installed]``) and ``dpkg-query -W`` output
(``[status<TAB>]name<TAB>version``, what the provisioning probe runs).

L4T → JetPack follows NVIDIA's JetPack archive (developer.nvidia.com/embedded/jetpack-archive);
an L4T release missing from the table is reported as ``"5.x"`` etc. from its major, never guessed
finer.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["JETPACK_BY_L4T", "jetson_software", "jetpack_for_l4t", "parse_nv_tegra_release",
           "parse_packages"]

JETPACK_BY_L4T = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
    "36.4.7": "6.2.1", "36.5.0": "6.2.2",
}
_MAJOR = {32: "4.x", 34: "5.0 DP", 35: "5.x", 36: "6.x", 38: "7.x"}
_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)(?:.*?BOARD:\s*([\w-]+))?")
_DPKG_LINE = re.compile(r"^([a-zA-Z]{2,3})\s+(\S+)\s+(\S+)(?:\s+(\S+))?")
_APT_LINE = re.compile(r"^([\w.+-]+)/\S+\s+(\S+)\s+(\S+)\s+\[installed")
_TENSORRT_PKGS = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7", "python3-libnvinfer")


def parse_nv_tegra_release(text: str) -> dict[str, Any]:
    """``# R35 (release), REVISION: 4.1, …`` → ``{"l4t": "35.4.1", "major": 35, "board": …}``.

    ``{}`` when *text* is not an nv_tegra_release file.
    """
    m = _RELEASE.search(text)
    if not m:
        return {}
    revision = m[2] if m[2].count(".") >= 1 else m[2] + ".0"
    return {"l4t": f"{m[1]}.{revision}", "major": int(m[1]), "board": m[3],
            "line": text.strip().splitlines()[0]}


def parse_packages(text: str) -> dict[str, str]:
    """Installed packages → ``{name: version}`` (arch suffixes dropped; removed ``rc`` rows and
    ``un`` rows skipped)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if "\t" in raw:
            cols = [c.strip() for c in raw.split("\t")]
            if len(cols) >= 3 and not cols[0].startswith("i"):
                continue
            name, version = cols[-2], cols[-1]
        elif m := _APT_LINE.match(line):
            name, version = m[1], m[2]
        elif (m := _DPKG_LINE.match(line)) and m[1].lower() in ("ii", "hi", "iu"):
            name, version = m[2], m[3]
        else:
            continue
        if version and version != "<none>":
            out[name.split(":")[0]] = version
    return out


def jetpack_for_l4t(l4t: str | None) -> str | None:
    """``"35.4.1"`` → ``"5.1.2"``; an unknown release → its major's series (``"5.x"``)."""
    if not l4t:
        return None
    if l4t in JETPACK_BY_L4T:
        return JETPACK_BY_L4T[l4t]
    major = int(l4t.split(".")[0]) if l4t.split(".")[0].isdigit() else None
    return _MAJOR.get(major) if major is not None else None


def jetson_software(tegra_release: str, packages: dict[str, str]) -> dict[str, Any]:
    """L4T (nv_tegra_release first, then ``nvidia-l4t-core``), JetPack, CUDA, cuDNN, TensorRT."""
    release = parse_nv_tegra_release(tegra_release)
    l4t, l4t_source = release.get("l4t"), "/etc/nv_tegra_release"
    if not l4t and "nvidia-l4t-core" in packages:
        l4t, l4t_source = packages["nvidia-l4t-core"].split("-")[0], "nvidia-l4t-core"
    if not l4t:
        return {"is_jetson": False}
    return {
        "is_jetson": True, "l4t": l4t, "l4t_source": l4t_source,
        "jetpack": jetpack_for_l4t(l4t), "board": release.get("board"),
        "cuda": _cuda(packages), "cudnn": _first(packages, r"libcudnn\d+(-cuda-\d+)?$"),
        "tensorrt": next((_upstream(packages[p]) for p in _TENSORRT_PKGS if p in packages),
                         None),
        "tensorrt_python_package": _upstream(packages.get("python3-libnvinfer")),
    }


def _upstream(version: str | None) -> str | None:
    """``8.5.2-1+cuda11.4`` → ``8.5.2``; ``10.3.0.30-1+cuda12.5`` → ``10.3.0.30``."""
    return version.split("-")[0] if version else None


def _first(packages: dict[str, str], pattern: str) -> str | None:
    names = sorted(n for n in packages if re.match(pattern, n))
    return _upstream(packages[names[0]]) if names else None


def _cuda(packages: dict[str, str]) -> str | None:
    """The CUDA runtime's version (``cuda-cudart-12-6`` → ``12.6.68``)."""
    for name in sorted(packages, reverse=True):
        if re.match(r"cuda-cudart-\d+-\d+$", name):
            return _upstream(packages[name])
    return None
