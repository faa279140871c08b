"""The corpus table of ``make zoo`` is well-formed: coverage, sources, data preparers, licences."""

from __future__ import annotations

import fnmatch
import re

import pytest

from bench import zoo_data, zoo_models
from bench.zoo_corpus import COVERAGE, MODELS, WHEELS, by_name


def test_corpus_has_ten_models_and_covers_every_requirement() -> None:
    names = [m.name for m in MODELS]
    assert len(names) >= 10 and len(set(names)) == len(names)
    covered = {tag for m in MODELS for tag in m.covers}
    assert set(COVERAGE) <= covered, f"not covered: {set(COVERAGE) - covered}"
    assert covered <= set(COVERAGE), f"unknown tags: {covered - set(COVERAGE)}"
    assert len({m.wheel for m in MODELS}) >= 6  # third-party models from several packages


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_each_model_names_one_packaged_source_data_and_licence(model) -> None:
    assert (model.member is None) != (model.factory is None)
    wheel = WHEELS[model.wheel]
    assert re.fullmatch(r"\d+(\.\d+)+", wheel.version), "wheels are pinned"
    assert model.licence and wheel.licence
    if model.member:
        assert model.member.endswith((".onnx", ".tflite"))
        assert any(fnmatch.fnmatchcase(model.member, p) for p in wheel.members)
    else:
        module, func = model.factory.split(":")
        assert module == "bench.zoo_models" and callable(getattr(zoo_models, func))
    assert model.data is None or model.data in zoo_data.PREPARERS
    for name, shape in model.input_shapes.items():
        assert name and shape and all(isinstance(d, int) and d >= 1 for d in shape)
    assert by_name(model.name) is model


def test_unknown_model_lists_the_corpus() -> None:
    with pytest.raises(KeyError, match="ocr-det"):
        by_name("nope")
