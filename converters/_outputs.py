"""Which artifact output is which source output, and in which layout.

A converter may rename, reorder and transpose outputs: onnx2tf writes ``Identity_1`` or, in a
full-int8 file, ``PartitionedCall:1`` listed out of order, under a signature whose keys are
``output_<i>``, and makes NCHW maps NHWC (``[1,55,75,4]`` for ``[1,4,55,75]``).
:func:`match_outputs` pairs every source output with one artifact output, trying in order:

1. ``name``: the artifact name, without ``serving_default_`` / ``:N`` decorations, or its
   signature key, is the source name;
2. ``index``: the decoration carries the source position (signature ``output_<i>``,
   ``Identity_<i>``, ``PartitionedCall:<i>``, ``StatefulPartitionedCall:<i>``);
3. ``shape``: exactly one artifact output has the source shape or its channels-last form;
4. ``values``: the artifact's first-sample outputs against the source's (best cosine);

and picks the layout the same way (the shape, else the values). Each pair records the
``transpose`` that makes the artifact's array from the source's (like inputs' ``transpose``):
the source layout is recovered with its inverse.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import ConversionError

__all__ = ["OutputMatch", "inverse", "match_outputs", "strip_name"]

_DECORATED = re.compile(r"^(serving_default_)?(.*?)(:\d+)?$")
_INDEXED = re.compile(r"^(?:output_|Identity_|(?:Stateful)?PartitionedCall:)(\d+)$")
_FIRST = {"Identity": 0, "PartitionedCall": 0, "StatefulPartitionedCall": 0, "output": 0}
Probe = Callable[[], "list[np.ndarray]"]


@dataclass(frozen=True)
class OutputMatch:
    """Source output ``source`` is artifact output ``index``, laid out by ``transpose``."""

    source: int
    index: int
    transpose: list[int] | None
    matched_by: str


def strip_name(name: str) -> str:
    """``serving_default_x:0`` → ``x``."""
    return _DECORATED.match(name).group(2)  # type: ignore[union-attr]


def inverse(perm: list[int] | None) -> list[int] | None:
    """The permutation that undoes *perm*."""
    return None if perm is None else [int(i) for i in np.argsort(perm)]


def match_outputs(names: list[list[str]], shapes: list[tuple[int, ...]],
                  sources: list[tuple[str, tuple[int, ...]]], probe: Probe | None = None,
                  expected: list[np.ndarray] | None = None) -> list[OutputMatch]:
    """Pair each of *sources* (name, batch-1 shape) with an artifact output.

    *names* holds, per artifact output, the names it is known by (tensor name, signature key);
    *probe* returns the artifact's outputs on the sample whose source outputs are *expected*.
    """
    if len(shapes) != len(sources):
        raise ConversionError(f"the artifact has {len(shapes)} outputs, the source "
                              f"{len(sources)} ({', '.join(n for n, _ in sources)})")
    values = _Lazy(probe)
    for how, pairs in (("name", _by_name(names, sources)), ("index", _by_index(names, sources)),
                       ("shape", _by_shape(shapes, sources))):
        if pairs is not None and all(_layouts(shapes[a], sources[s][1]) for s, a in pairs):
            return [_pair(s, a, shapes, sources, how, values, expected) for s, a in pairs]
    if probe is not None and expected is not None:
        return _by_values(shapes, sources, values(), expected)
    raise ConversionError(f"cannot tell which artifact output is which source output "
                          f"({[n[0] for n in names]} vs {[n for n, _ in sources]}); give the "
                          "outputs distinct names or shapes")


class _Lazy:
    """The probe's outputs, computed at most once."""

    def __init__(self, probe: Probe | None) -> None:
        self.probe, self.cache = probe, None

    def __call__(self) -> list[np.ndarray] | None:
        if self.cache is None and self.probe is not None:
            self.cache = self.probe()
        return self.cache


def _by_name(names: list[list[str]], sources: list[tuple[str, tuple[int, ...]]]
             ) -> list[tuple[int, int]] | None:
    wanted = {n: i for i, (n, _) in enumerate(sources)}
    pairs = {}
    for a, known in enumerate(names):
        keys = [*known, *(strip_name(n) for n in known)]  # exact names first
        hit = next((wanted[k] for k in keys if k in wanted), None)
        if hit is not None:
            pairs[hit] = a
    return sorted(pairs.items()) if len(pairs) == len(sources) == len(set(pairs.values())) else None


def _by_index(names: list[list[str]], sources: list[tuple[str, tuple[int, ...]]]
              ) -> list[tuple[int, int]] | None:
    pairs = {}
    for a, known in enumerate(names):
        found = [int(m.group(1)) for m in map(_INDEXED.match, known) if m]
        found += [_FIRST[n] for n in known if n in _FIRST]
        if found:
            pairs.setdefault(found[0], a)
    ok = sorted(pairs) == list(range(len(sources))) and len(set(pairs.values())) == len(sources)
    return sorted(pairs.items()) if ok else None


def _by_shape(shapes: list[tuple[int, ...]], sources: list[tuple[str, tuple[int, ...]]]
              ) -> list[tuple[int, int]] | None:
    pairs = []
    for s, (_, shape) in enumerate(sources):
        fits = [a for a, got in enumerate(shapes) if _layouts(got, shape)]
        if len(fits) != 1:
            return None
        pairs.append((s, fits[0]))
    return pairs if len({a for _, a in pairs}) == len(pairs) else None


def _by_values(shapes: list[tuple[int, ...]], sources: list[tuple[str, tuple[int, ...]]],
               got: list[np.ndarray] | None, expected: list[np.ndarray]) -> list[OutputMatch]:
    scored = sorted(((-_cos(got[a], expected[s], p), s, a, p)  # type: ignore[index]
                     for s, (_, shape) in enumerate(sources) for a in range(len(shapes))
                     for p in _layouts(shapes[a], shape)), key=lambda t: t[:3])
    taken_s, taken_a, matches = set(), set(), []
    for _, s, a, p in scored:
        if s not in taken_s and a not in taken_a:
            taken_s.add(s)
            taken_a.add(a)
            matches.append(OutputMatch(s, a, p, "values"))
    if len(matches) != len(sources):
        raise ConversionError("artifact output shapes are no layout of the source's "
                              f"({[list(s) for s in shapes]} vs {[list(s) for _, s in sources]})")
    return sorted(matches, key=lambda m: m.source)


def _pair(s: int, a: int, shapes: list[tuple[int, ...]],
          sources: list[tuple[str, tuple[int, ...]]], how: str, values: _Lazy,
          expected: list[np.ndarray] | None) -> OutputMatch:
    perms = _layouts(shapes[a], sources[s][1])
    got = values() if len(perms) > 1 and expected is not None else None
    if got is None:
        return OutputMatch(s, a, perms[0], how)
    best = max(perms, key=lambda p: _cos(got[a], expected[s], p))  # type: ignore[index]
    return OutputMatch(s, a, best, f"{how}, layout by values")


def _layouts(shape: tuple[int, ...], source: tuple[int, ...]) -> list[list[int] | None]:
    """Permutations *p* with ``source.transpose(p).shape == shape`` (None: as is), likeliest
    first."""
    shape, source = tuple(shape), tuple(source)
    found: list[list[int] | None] = [None] if shape == source else []
    n = len(source)
    perm = [0, *range(2, n), 1] if 3 <= n <= 5 else None
    if perm and tuple(source[p] for p in perm) == shape:
        found.append(perm)
    return found


def _cos(got: np.ndarray, want: np.ndarray, perm: list[int] | None) -> float:
    x = np.asarray(got, np.float64)
    x = x.transpose(inverse(perm)) if perm else x
    if x.shape != want.shape:
        return -2.0
    a, b = x.ravel(), np.asarray(want, np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / den if den else (1.0 if not a.any() and not b.any() else 0.0)
