"""Parsers of board tools, on output captured from real boards (tests/profiler/data, sources
named in each file), plus the host-side enrichment of an agent document."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.parsers import (
    decode_throttled,
    energy_per_inference,
    enrich,
    parse_jetson_clocks,
    parse_nvpmodel,
    parse_tegrastats_line,
    parse_trtexec,
    parse_vcgencmd,
    summarize_tegrastats,
)

DATA = Path(__file__).parent / "data"


def _captured(name: str) -> str:
    """The captured output without the provenance comment lines."""
    lines = (DATA / name).read_text().splitlines()
    return "\n".join(x for x in lines if not x.startswith("#"))


def test_tegrastats_jetpack4_nano_pom_rails() -> None:
    s = parse_tegrastats_line(_captured("tegrastats_jp4_nano.txt"))
    assert (s["ram_used_mb"], s["ram_total_mb"]) == (1409, 3964)
    assert s["cpu"] == [{"load": 22, "mhz": 518}, {"load": 67, "mhz": 518}, None, None]
    assert (s["emc_pct"], s["emc_mhz"], s["gpu_pct"], s["gpu_mhz"]) == (0, 1600, 0, 76)
    assert s["temps_c"]["thermal"] == 31.25
    assert s["rails_mw"] == {"POM_5V_IN": 2003, "POM_5V_GPU": 0, "POM_5V_CPU": 320}


def test_tegrastats_jetpack4_xavier_and_jetpack6_orin() -> None:
    nx = summarize_tegrastats([_captured("tegrastats_jp4_xavier_nx.txt")])
    assert (nx["power_mw"], nx["power_source"]) == (3140, "VDD_IN")
    assert nx["max_temp_c"] == 42.5  # PMIC@100C is a placeholder, not a reading
    orin = parse_tegrastats_line(_captured("tegrastats_jp6_agx_orin.txt"))
    assert orin["ram_total_mb"] == 62801 and len(orin["cpu"]) == 12
    assert (orin["emc_mhz"], orin["gpu_mhz"]) == (2133, 0)
    assert "GPU" not in orin["temps_c"] and orin["temps_c"]["tj"] == 44.343  # -256C = absent
    assert orin["rails_mw"]["VIN_SYS_5V0"] == 4025 and "NC" not in orin["rails_mw"]
    total = summarize_tegrastats([_captured("tegrastats_jp6_agx_orin.txt")])
    assert total["power_source"] == "sum of rails" and total["power_mw"] == 2340 + 390 + 4025 + 301


def test_energy_per_inference() -> None:
    assert energy_per_inference(5000.0, 2.0, 1000) == 10.0  # 5 W × 2 s / 1000 = 10 mJ
    assert energy_per_inference(None, 2.0, 10) is None and energy_per_inference(1.0, 0, 10) is None


@pytest.mark.parametrize(("name", "qps", "p50", "p99", "p90"), [
    ("trtexec_trt10.txt", 130.298, 7.16092, 12.9675, 10.2996),
    ("trtexec_trt8.txt", 716.632, 1.38037, 1.55853, None),
])
def test_trtexec_summary(name: str, qps: float, p50: float, p99: float, p90: float | None) -> None:
    s = parse_trtexec(_captured(name))
    assert s["found"] and s["throughput_qps"] == qps
    assert (s["latency_ms"]["p50"], s["latency_ms"]["p99"]) == (p50, p99)
    assert s["latency_ms"].get("p90") == p90 and s["gpu_compute_ms"]["min"] > 0
    assert s["host_walltime_s"] > 3


def test_trtexec_without_summary_and_its_warnings() -> None:
    assert parse_trtexec("[E] Engine could not be created") == {"found": False}
    assert "coefficient of variance" in parse_trtexec(_captured("trtexec_trt8.txt"))["warnings"][0]


def test_vcgencmd_outputs() -> None:
    pi3 = parse_vcgencmd(_captured("vcgencmd_rpi3.txt"))
    assert [t["raw"] for t in pi3["throttled"]] == ["0x50000", "0x50005"]
    assert [t["now"] for t in pi3["throttled"]] == [False, True]
    assert pi3["temp_c"] == [39.2, 38.6, 38.6, 38.6]
    bplus = parse_vcgencmd(_captured("vcgencmd_rpi3bplus.txt"))
    assert bplus == {"throttled": [decode_throttled(0)], "temp_c": [62.3], "arm_mhz": [1400.0]}
    assert decode_throttled(0x50005)["flags"] == ["under_voltage", "throttled",
                                                  "under_voltage_occurred", "throttling_occurred"]


def test_nvpmodel_and_jetson_clocks() -> None:
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0}
    assert parse_nvpmodel("") == {}
    shown = ("SOC family:tegra234  Machine:NVIDIA Orin\n"
             "cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=2201600 CurrentFreq=2112000\n")
    assert parse_jetson_clocks(shown) == {"active": False, "cpus": 1}
    assert parse_jetson_clocks("")["active"] is None


def test_enrich_adds_power_thermal_and_trtexec() -> None:
    line = _captured("tegrastats_jp4_nano.txt")
    result = {"ok": True, "runs": 100, "batch": 1, "measured_s": 1.0,
              "thermal": {"before": {"temps_c": {"cpu": 40.0},
                                     "vcgencmd": {"get_throttled": "throttled=0x0"}},
                          "after": {"temps_c": {"cpu": 45.0}, "vcgencmd": None},
                          "timeline": [{"t": 0.5, "temp_c": 44.0, "freq_mhz": 1400.0,
                                        "throttled": "throttled=0x50005"}],
                          "measure_started_s": 0.2, "measure_ended_s": 1.2},
              "tegrastats": {"interval_ms": 500, "lines": [[0.1, line], [0.6, line], [0.9, line],
                                                           [1.1, line]]},
              "trtexec": {"ran": True, "output_tail": _captured("trtexec_trt8.txt").splitlines()}}
    doc = enrich({"device": {"jetson": {"nvpmodel": "NV Power Mode: 5W\n1"}}, "results": [result]})
    assert doc["device"]["jetson"]["nvpmodel_parsed"] == {"mode": "5W", "id": 1}
    th = result["thermal"]["summary"]
    assert (th["max_temp_c"], th["throttled"], th["min_freq_mhz"]) == (45.0, True, 1400.0)
    power = result["power"]
    assert power["samples"] == 3 and power["window"] == "measured runs"
    assert power["energy_mj_per_inference"] == pytest.approx(2003 / 1000 * 1.0 / 100 * 1000)
    assert len(result["tegrastats"]["lines"]) == 3
    assert result["trtexec"]["summary"]["throughput_qps"] == 716.632
