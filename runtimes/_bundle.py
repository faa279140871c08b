"""Private: read a bundle directory and check it against its own manifest before shipping."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from core.contracts import BUNDLE_ID
from core.errors import ShipError

__all__ = ["read_bundle"]

_ID = re.compile(BUNDLE_ID)
_BAD_NAME = re.compile(r"[/\\\n\r\x00]")


def read_bundle(bundle_dir: Path) -> tuple[str, dict[str, str]]:
    """``(bundle_id, {file name: sha256})`` of a bundle, checked against its own manifest.

    ``manifest.json`` is included (by the sha256 of its bytes).
    """
    bundle_dir = Path(bundle_dir)
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
        bundle_id, files = manifest["bundle_id"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShipError(f"{bundle_dir} is not a bundle (manifest.json unreadable or without "
                        f"bundle_id/files: {exc}); rebuild it with `edgeship convert`") from exc
    if not isinstance(bundle_id, str) or not _ID.match(bundle_id):
        raise ShipError(f"{bundle_dir}/manifest.json: bundle_id {bundle_id!r} is not a plain name")
    unsafe = [n for n in files if _BAD_NAME.search(n) or n.startswith(".") or n == "manifest.json"]
    if unsafe:
        raise ShipError(f"{bundle_dir}/manifest.json lists an unsafe file name {unsafe[0]!r}")
    hashes = {"manifest.json": _sha256(bundle_dir / "manifest.json")}
    for name, meta in files.items():
        path = bundle_dir / name
        if not path.is_file() or _sha256(path) != meta["sha256"]:
            raise ShipError(f"bundle {bundle_id}: {name} is missing or differs from its manifest "
                            f"sha256; the bundle is corrupt, rebuild it (`edgeship convert`)")
        hashes[name] = meta["sha256"]
    return bundle_id, hashes


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
