"""Board state per artifact on a Jetson, parsed from captured JetPack 5/6 tool output."""

from __future__ import annotations

from jetson_kit import DATA

from profiler.parsers import parse_trtexec
from profiler.parsers.board import board_state, enrich, parse_jetson_clocks, parse_nvpmodel
from profiler.parsers.tegrastats import summarize_tegrastats


def test_nvpmodel_and_clocks_of_a_jp6_orin_nano() -> None:
    assert parse_nvpmodel((DATA / "jp6" / "nvpmodel-q.txt").read_text()) == {"mode": "25W", "id": 1}
    assert parse_nvpmodel((DATA / "jp6" / "nvpmodel-q-maxn-thor.txt").read_text()) == {
        "mode": "MAXN", "id": 0}
    clocks = parse_jetson_clocks((DATA / "jp6" / "jetson_clocks-show.txt").read_text())
    assert clocks == {"active": False, "cpus": 6, "gpu_mhz": 306.0, "gpu_max_mhz": 918.0,
                      "emc_mhz": 665.6, "emc_max_mhz": 3199.0}


def test_tegrastats_clocks_and_power_jp5_and_jp6() -> None:
    jp5 = summarize_tegrastats((DATA / "jp5" / "tegrastats.txt").read_text().splitlines())
    assert (jp5["power_mw"], jp5["power_source"], jp5["gpu_pct"]) == (5336, "VDD_IN", 61)
    assert jp5["emc_mhz"] == 2133 and jp5["gpu_mhz"] is None  # JP5 prints no GPU clock
    jp6 = summarize_tegrastats((DATA / "jp6" / "tegrastats.txt").read_text().splitlines())
    assert jp6["power_source"] == "sum of rails" and jp6["emc_mhz"] == 2133


def test_trtexec_jp5_summary() -> None:
    summary = parse_trtexec((DATA / "jp5" / "trtexec.txt").read_text())
    assert summary["throughput_qps"] == 0.406047
    assert summary["gpu_compute_ms"]["p99"] == 2239.32 and summary["h2d_ms"]["p50"] == 1.80225


def test_board_state_is_recorded_per_artifact() -> None:
    lines = [[0.5, (DATA / "jp5" / "tegrastats.txt").read_text().strip()]]
    doc = {"device": {"l4t": (DATA / "jp6" / "nv_tegra_release").read_text().splitlines()[0],
                      "jetson": {"nvpmodel": (DATA / "jp6" / "nvpmodel-q.txt").read_text(),
                                 "jetson_clocks": None,
                                 "packages": "ii \ttensorrt\t10.3.0.30-1+cuda12.5\n"}},
           "results": [{"key": "onnx-fp16", "ok": True, "runs": 100, "batch": 1,
                        "measured_s": 1.0, "tegrastats": {"lines": lines},
                        "thermal": {"measure_started_s": 0.0, "measure_ended_s": 1.0}}]}
    enrich(doc)
    software = doc["device"]["jetson"]["software"]
    assert (software["l4t"], software["jetpack"], software["tensorrt"]) == (
        "36.4.7", "6.2.1", "10.3.0.30")
    state = doc["results"][0]["board_state"]
    assert (state["nvpmodel"], state["nvpmodel_id"], state["jetson_clocks"]) == ("25W", 1, None)
    assert (state["gpu_pct"], state["emc_mhz"], state["power_mw"]) == (61, 2133, 5336)
    assert state["energy_mj_per_inference"] == 53.36  # 5.336 W * 1 s / 100 inferences
    assert board_state({}, {})["basis"].startswith("no tegrastats samples")
