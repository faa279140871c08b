"""The sweep: one measured row per recipe, a Pareto front, JSON and a non-empty chart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from converters.sweep import (
    SweepRecipe,
    default_recipes,
    load_recipes,
    measure_side_by_side,
    prepare,
    run_sweep,
)
from core.errors import ConfigError
from profiles import load_profile

ONNX = load_profile("sim").model_copy(update={"artifacts": load_profile("sim").artifacts[:2]})
RECIPES = [SweepRecipe(name="fp32"), SweepRecipe(name="int8-static", precision="int8"),
           SweepRecipe(name="int8-dynamic", precision="int8", mode="dynamic"),
           SweepRecipe(name="fp16", precision="fp16"),
           SweepRecipe(name="broken", passes=({"name": "no_such_pass"},))]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    loaded, data = prepare("test_inputs_models:bag_model", "test_inputs_models:bag_data")
    out = tmp_path_factory.mktemp("sweep")
    return run_sweep(loaded, data, ONNX, RECIPES, out, runs=100), out


def test_one_measured_row_per_recipe(swept) -> None:
    result, _ = swept
    rows = {r["name"]: r for r in result.rows}
    assert list(rows) == [r.name for r in RECIPES]
    for name in ("fp32", "int8-static", "int8-dynamic", "fp16"):
        row = rows[name]
        assert row["error"] is None and row["latency_runs"] == 100
        assert row["size_bytes"] > 0 and row["latency_ms"] > 0 and row["accuracy"] is not None
    assert rows["fp32"]["size_ratio"] == 1.0 and rows["fp32"]["baseline"]
    assert rows["int8-static"]["size_ratio"] is not None and rows["int8-dynamic"]["mode"] == "dynamic"
    assert any(r.get("pareto") for r in result.rows)
    assert "no_such_pass" in rows["broken"]["error"] and rows["broken"]["size_ratio"] is None


def test_json_and_chart_are_written(swept) -> None:
    result, out = swept
    doc = json.loads((out / "sweep.json").read_text())
    assert len(doc["rows"]) == len(RECIPES) and doc["latency"]["runs"] == 100
    assert doc["quality"] == "accuracy" and not doc["data"]["synthetic"]
    png = out / "sweep.png"
    assert png in result.charts and png.stat().st_size > 5000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "sweep.svg").stat().st_size > 0


def test_synthetic_sweep_has_no_accuracy(tmp_path: Path, swept,
                                         caplog: pytest.LogCaptureFixture) -> None:
    import onnx  # noqa: F401 - the bag ONNX comes from the model fixture's export

    result, out = swept
    fp32 = Path(next(r["file"] for r in result.rows if r["name"] == "fp32"))
    with caplog.at_level(logging.WARNING, logger="converters"):
        loaded, data = prepare(str(fp32), None)
    assert "synthetic" in caplog.text
    assert data.synthetic and data.labels is None
    res = run_sweep(loaded, data, ONNX, RECIPES[:2], tmp_path, runs=100, chart=False)
    assert all(r["accuracy"] is None and r["cosine"] > 0.9 for r in res.rows)
    assert res.document["data"]["synthetic"] and res.document["quality"] == "cosine vs original"


def test_default_recipes_cover_quantization_and_registered_passes() -> None:
    names = [r.name for r in default_recipes(ONNX, passes=["prune"])]
    assert names == ["fp32", "int8-static", "int8-dynamic", "fp16", "prune+fp32", "prune+int8"]


def test_recipe_files_validate(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("recipes:\n  - {name: dyn, precision: int8, mode: dynamic, "
                                     "per_channel: false}\n")
    assert load_recipes([tmp_path])[0].per_channel is False
    (tmp_path / "b.yaml").write_text("name: bad\nprecison: int8\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: recipe 1: precison: Extra inputs"):
        load_recipes([tmp_path / "b.yaml"])


def test_side_by_side_timing_can_take_the_calls_load_did_not_slow() -> None:
    """The int16 guard's statistic: a low percentile ignores the calls something else on the
    host slowed (here two calls in three sleep 20 ms), where the median takes them in."""
    import time

    count = {"n": 0}

    def sometimes_slow() -> None:
        count["n"] += 1
        if count["n"] % 3:
            time.sleep(0.02)

    fast = {"a": sometimes_slow}
    median = measure_side_by_side(fast, runs=30, rounds=3, warmup=0)["a"]
    low = measure_side_by_side(fast, runs=30, rounds=3, warmup=0, percentile=10)["a"]
    assert low < 5.0 < 20.0 <= median


def test_side_by_side_timing_gives_a_median_per_invoker() -> None:
    calls = {"a": 0, "b": 0}
    got = measure_side_by_side({k: (lambda k=k: calls.__setitem__(k, calls[k] + 1)) for k in calls},
                               runs=100, rounds=3, warmup=2)
    assert set(got) == {"a", "b"} and calls == {"a": 102, "b": 102}
