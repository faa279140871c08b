"""Build (or reuse) the bundle of one model for one profile: ``<home>/bundles/<bundle_id>/``.

The id is computed first — sha256 over the source fingerprint, the data file, the profile, the
board files (the caller's: the orchestration passes the profiler's agent script), the tool
versions and :data:`~converters._util.FORMAT_VERSION` — so an unchanged input is never rebuilt. A new bundle is built in ``bundles/.tmp-<id>-<random>/`` and renamed into place
when complete; on any failure the temp dir is removed, so nothing half-written remains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.contracts import MANIFEST_SCHEMA, Manifest
from core.errors import ConfigError
from core.paths import Paths, default_paths
from profiles import Profile

from ._util import FORMAT_VERSION, file_sha256, tool_versions
from .data import Dataset, load_dataset
from .load import LoadedModel, identify_source, load_model, source_sha256
from .passes import resolve_recipe
from .pipeline import align_data, build_artifacts, synthetic_for
from .steps import Timings, recording

__all__ = ["MANIFEST", "SCHEMA", "Bundle", "build_bundle", "bundle_id"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA = MANIFEST_SCHEMA  # the manifest version this module writes (core.contracts)


@dataclass(frozen=True)
class Bundle:
    """A complete bundle directory and its manifest; ``reused`` when it came from the cache."""

    id: str
    path: Path
    manifest: dict[str, Any]
    reused: bool = False


def bundle_id(source_sha256: str, data_sha256: str | None, profile: Profile,
              board_files: Mapping[str, str] | None = None,
              tools: dict[str, str | None] | None = None,
              input_shapes: dict[str, tuple[int, ...]] | None = None) -> str:
    """First 16 hex of sha256 over everything that determines the bundle's content."""
    key = {"format": FORMAT_VERSION, "source": source_sha256, "data": data_sha256,
           "input_shapes": {k: list(v) for k, v in sorted((input_shapes or {}).items())},
           "profile": profile.model_dump(mode="json"), "board_files": dict(sorted((board_files or {}).items())),
           "tools": tools if tools is not None else tool_versions(for_hash=True)}
    blob = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_bundle(source: str, profile: Profile, data: str | Path | None = None,
                 paths: Paths | None = None, *, progress: Callable[[str], None] | None = None,
                 force: bool = False,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 board_files: Mapping[str, Path] | None = None) -> Bundle:
    """Build the bundle of *source* for *profile*, or return the cached one (``reused=True``).

    *data* is a ``.npz`` data file (see docs/architecture.md); without it, ONNX sources (or
    torch sources with *input_shapes*) are verified on synthetic inputs, drift only.
    *board_files* (``{name in the bundle: path}``) are copied in as they are — the converters
    do not know what runs on the board; ``edgeship.deploy.convert`` passes the profiler's agent.
    """
    paths = paths or default_paths()
    say = progress or (lambda _step: None)
    src = identify_source(source)
    if data is None and src.is_torch and not input_shapes:
        raise ConfigError(f"{source}: a torch model without --data needs input shapes "
                          "(input_shapes={'input': (1, 3, 224, 224)}); or pass a data file")
    resolve_recipe(profile.recipe)
    if profile.recipe and not src.is_torch:
        raise ConfigError(f"{source}: recipe passes need a torch source; remove the profile's "
                          "recipe for .onnx models")
    dataset = load_dataset(data) if data is not None else None
    loaded, clock = None, Timings()  # the manifest's ``timings`` (converters.steps)
    sha = source_sha256(src)
    if sha is None:  # module:factory: the fingerprint needs the weights
        say("loading model")
        with clock.step("load"):
            loaded = load_model(source, input_shapes)
        sha = loaded.sha256
    extra = {name: Path(path) for name, path in (board_files or {}).items()}
    bid = bundle_id(sha, dataset.sha256 if dataset else None, profile,
                    {name: file_sha256(path) for name, path in extra.items()},
                    input_shapes=input_shapes)
    final = paths.bundles / bid
    if (final / MANIFEST).exists() and not force:
        log.info("bundle %s is cached at %s", bid, final)
        return Bundle(bid, final, json.loads((final / MANIFEST).read_text()), reused=True)
    if loaded is None:
        say("loading model")
        with clock.step("load"):
            loaded = load_model(source, input_shapes)
    dataset = align_data(loaded, dataset) if dataset else synthetic_for(loaded)
    return _build(bid, final, loaded, dataset, profile, extra, paths, say, clock)


def _build(bid: str, final: Path, loaded: LoadedModel, data: Dataset, profile: Profile,
           extra: Mapping[str, Path], paths: Paths, say: Callable[[str], None],
           clock: Timings | None = None) -> Bundle:
    paths.bundles.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{bid}-", dir=paths.bundles))
    try:
        with recording(clock) as timings:
            parts = build_artifacts(tmp, loaded, data, profile, say)
        parts["timings"] = timings.to_dict()
        log.info("timings (%.1f s): %s", timings.total(), timings.summary())
        say("writing bundle")
        for name, path in extra.items():
            shutil.copyfile(path, tmp / name)
        manifest = _manifest(bid, tmp, loaded, profile, parts)
        Manifest.model_validate(manifest)  # the contract shipping, agent and report rely on
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _install(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("bundle %s written to %s", bid, final)
    return Bundle(bid, final, manifest, reused=False)


def _manifest(bid: str, tmp: Path, loaded: LoadedModel, profile: Profile,
              parts: dict[str, Any]) -> dict[str, Any]:
    files = {p.name: {"sha256": file_sha256(p), "size_bytes": p.stat().st_size}
             for p in sorted(tmp.iterdir()) if p.is_file() and p.name != MANIFEST}
    return {"schema": SCHEMA, "bundle_id": bid,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": {"kind": loaded.kind, "ref": loaded.ref, "sha256": loaded.sha256},
            "profile": profile.model_dump(mode="json"),
            "recipe": (parts.get("recipe")  # each pass's options *and* what it changed
                       or [s.to_dict() for s in resolve_recipe(profile.recipe)]),
            "tools": tool_versions(), "data": parts["data"], "reference": parts["reference"],
            "files": files, "artifacts": parts["artifacts"],
            "left_out": parts.get("left_out", []), "timings": parts.get("timings")}


def _install(tmp: Path, final: Path) -> None:
    """Rename *tmp* to *final*; a forced rebuild moves the old bundle aside first."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
