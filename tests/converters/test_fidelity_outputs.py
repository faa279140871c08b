"""converters._outputs: which artifact output is which source output, and in which layout."""

from __future__ import annotations

import numpy as np
import pytest

from converters._outputs import inverse, match_outputs, strip_name
from core.errors import ConversionError

SOURCES = [("cls", (1, 5)), ("map", (1, 4, 10, 12)), ("boxes", (1, 4))]


def _pairs(matches) -> list[tuple[int, int, list[int] | None, str]]:
    return [(m.source, m.index, m.transpose, m.matched_by) for m in matches]


def test_names_survive_with_decorations() -> None:
    shapes = [(1, 4), (1, 5), (1, 10, 12, 4)]
    assert strip_name("serving_default_boxes:0") == "boxes"
    got = match_outputs([["serving_default_boxes:0"], ["cls"], ["map:0"]], shapes, SOURCES)
    assert _pairs(got) == [(0, 1, None, "name"), (1, 2, [0, 2, 3, 1], "name"),
                           (2, 0, None, "name")]


def test_full_int8_order_by_signature_index() -> None:
    """onnx2tf full int8: ``PartitionedCall:1, :0, :2`` under signature keys ``output_<i>``."""
    names = [["output_1", "PartitionedCall:1"], ["output_0", "PartitionedCall:0"],
             ["output_2", "PartitionedCall:2"]]
    shapes = [(1, 10, 12, 4), (1, 5), (1, 4)]
    got = match_outputs(names, shapes, SOURCES)
    assert _pairs(got) == [(0, 1, None, "index"), (1, 0, [0, 2, 3, 1], "index"),
                           (2, 2, None, "index")]
    fp32 = match_outputs([["Identity"], ["Identity_2"], ["Identity_1"]],
                         [(1, 5), (1, 4), (1, 10, 12, 4)], SOURCES)
    assert [(m.source, m.index) for m in fp32] == [(0, 0), (1, 2), (2, 1)]


def test_same_shapes_told_apart_by_values() -> None:
    rng = np.random.default_rng(0)
    want = [rng.normal(size=(1, 4)), rng.normal(size=(1, 4))]
    sources = [("a", (1, 4)), ("b", (1, 4))]
    got = match_outputs([["t0"], ["t1"]], [(1, 4), (1, 4)], sources,
                        probe=lambda: [want[1] + 1e-3, want[0]], expected=want)
    assert _pairs(got) == [(0, 1, None, "values"), (1, 0, None, "values")]


def test_square_layout_told_apart_by_values() -> None:
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 4))
    got = match_outputs([["Identity"]], [(1, 4, 4, 4)], [("m", (1, 4, 4, 4))],
                        probe=lambda: [x.transpose(0, 2, 3, 1)], expected=[x])
    assert _pairs(got) == [(0, 0, [0, 2, 3, 1], "index, layout by values")]
    assert inverse([0, 2, 3, 1]) == [0, 3, 1, 2]


def test_unmatchable_outputs_say_why() -> None:
    with pytest.raises(ConversionError, match="the artifact has 2 outputs, the source 3"):
        match_outputs([["a"], ["b"]], [(1, 5), (1, 4)], SOURCES)
    with pytest.raises(ConversionError, match="cannot tell which artifact output"):
        match_outputs([["t0"], ["t1"]], [(1, 4), (1, 4)], [("a", (1, 4)), ("b", (1, 4))])
