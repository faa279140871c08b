"""JetPack detection and the Jetson provisioning plan, driven by captured JetPack 5/6 files."""

from __future__ import annotations

from pathlib import Path

import pytest
from jetson_kit import DATA, make_sysroot, package_text, probe_raw
from rt_kit import open_transport

from core.errors import ConfigError, ShipError
from core.paths import Paths
from devices import Board, load_inventory
from profiles import load_profile
from runtimes import BoardFacts, probe_board
from runtimes.jetpack import OrtSource, jetson_facts, ort_source, plan_runtime
from runtimes.jetpack_facts import (
    jetpack_for_l4t,
    jetson_software,
    parse_nv_tegra_release,
    parse_packages,
)
from runtimes.provision import runtime_plan

TRT_MISSING = {"tensorrt_error": "No module named 'tensorrt'"}


def _facts(jp: str, modules: dict[str, str], python: str = "3.10.12") -> BoardFacts:
    return BoardFacts(machine="aarch64", python=python, executable="/usr/bin/python3",
                      glibc="2.35", os="Ubuntu 22.04.5 LTS", free_mb=50_000,
                      jetson=jetson_facts(probe_raw(jp, modules)))


@pytest.mark.parametrize(("jp", "l4t", "jetpack", "cuda", "cudnn", "trt"), [
    ("jp5", "35.4.1", "5.1.2", "11.4.298", "8.6.0.166", "8.5.2"),
    ("jp6", "36.4.7", "6.2.1", "12.6.68", "9.3.0.75", "10.3.0.30"),
])
def test_captured_jetpack_is_detected(jp: str, l4t: str, jetpack: str, cuda: str, cudnn: str,
                                      trt: str) -> None:
    sw = jetson_software((DATA / jp / "nv_tegra_release").read_text(),
                         parse_packages(package_text(jp)))
    assert sw["is_jetson"] and sw["l4t_source"] == "/etc/nv_tegra_release"
    assert (sw["l4t"], sw["jetpack"], sw["cuda"], sw["cudnn"], sw["tensorrt"]) == (
        l4t, jetpack, cuda, cudnn, trt)
    assert sw["tensorrt_python_package"] == trt


def test_l4t_from_the_core_package_when_the_release_file_is_missing() -> None:
    sw = jetson_software("", parse_packages((DATA / "jp6" / "dpkg-l-l4t-core-36.3.txt").read_text()))
    assert (sw["l4t"], sw["l4t_source"], sw["jetpack"]) == ("36.3.0", "nvidia-l4t-core", "6.0")
    apt = parse_packages((DATA / "jp6" / "apt-list-l4t.txt").read_text())
    assert apt["nvidia-l4t-core"].startswith("36.3.0-")
    assert jetson_software("", {}) == {"is_jetson": False}


def test_release_parser_and_unknown_releases() -> None:
    info = parse_nv_tegra_release((DATA / "jp5" / "nv_tegra_release").read_text())
    assert (info["l4t"], info["major"], info["board"]) == ("35.4.1", 35, "t186ref")
    assert parse_nv_tegra_release("Debian GNU/Linux 12") == {}
    assert jetpack_for_l4t("36.9.9") == "6.x" and jetpack_for_l4t(None) is None


def test_dpkg_query_rows_skip_packages_not_installed() -> None:
    text = "ii \ttensorrt\t10.3.0.30-1+cuda12.5\nun \tlibcudnn8\t\nrc \tcuda-cudart-11-4\t11.4\n"
    assert parse_packages(text) == {"tensorrt": "10.3.0.30-1+cuda12.5"}


def test_jp5_with_tensorrt_bindings_uses_them_and_labels_the_cpu_onnxruntime() -> None:
    facts = _facts("jp5", {"tensorrt": "8.5.2.2"}, python="3.8.10")
    assert facts.platform_key.endswith("-jetson") and "linux_aarch64" in facts.manylinux_tags()
    plan = plan_runtime(facts, None, "required", "orin")
    assert plan.jetson and plan.system_site_packages and plan.tensorrt == "8.5.2.2"
    assert plan.requirements == ("onnxruntime", "numpy<2", "cuda-python>=11.0,<12")
    assert "CPU" in plan.onnxruntime and "CPU build" in plan.warnings[0]
    with_pycuda = _facts("jp5", {"tensorrt": "8.5.2.2", "pycuda": "2024.1"}, python="3.8.10")
    assert plan_runtime(with_pycuda, None, "required").requirements == ("onnxruntime", "numpy<2")
    assert any("JetPack 5.1.2" in n and "TensorRT 8.5.2" in n for n in plan.notes)


def test_jp6_with_the_users_gpu_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "onnxruntime_gpu-1.20.0-cp310-cp310-linux_aarch64.whl"
    wheel.write_bytes(b"PK")
    plan = plan_runtime(_facts("jp6", {"tensorrt": "10.3.0"}), OrtSource(wheel=str(wheel)),
                        "required")
    assert plan.requirements == ("onnxruntime_gpu==1.20.0", "numpy<2", "cuda-python>=12.0,<13")
    assert plan.downloads == (str(wheel.resolve()), "numpy<2", "cuda-python>=12.0,<13")
    assert "onnxruntime_gpu 1.20.0 from wheel" in plan.onnxruntime and not plan.warnings


def test_a_wheel_for_another_python_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "onnxruntime_gpu-1.16.0-cp38-cp38-linux_aarch64.whl"
    wheel.write_bytes(b"PK")
    with pytest.raises(ShipError, match=r"cp38/linux_aarch64.*Python 3\.10 on aarch64"):
        plan_runtime(_facts("jp6", {}), OrtSource(wheel=str(wheel)), "required")
    with pytest.raises(ShipError, match="not a wheel file"):
        plan_runtime(_facts("jp6", {}), OrtSource(wheel=str(tmp_path / "x.whl")), "required")


def test_an_index_source_goes_to_pip_as_extra_index() -> None:
    plan = plan_runtime(_facts("jp6", TRT_MISSING),
                        OrtSource(index="https://pypi.jetson-ai-lab.dev/jp6/cu126"), "required")
    assert plan.requirements == ("onnxruntime-gpu", "numpy<2") and plan.tensorrt is None
    assert plan.extra_index == "https://pypi.jetson-ai-lab.dev/jp6/cu126"


def test_no_gpu_runtime_is_refused_with_the_fix() -> None:
    with pytest.raises(ShipError) as err:
        plan_runtime(_facts("jp6", TRT_MISSING), None, "required", "orin")
    msg = str(err.value)
    for needle in ("'orin' is a Jetson (L4T 36.4.7 (JetPack 6.2.1))", "No module named 'tensorrt'",
                   "python3-libnvinfer", "edgeship_ort_wheel=", "edgeship_ort_index="):
        assert needle in msg


def test_jetpack4_refusal_names_the_python_gap() -> None:
    raw = probe_raw("jp5", TRT_MISSING)  # typed JetPack 4 release line (no JP4 capture kept)
    raw["tegra_release"] = "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref"
    facts = BoardFacts(machine="aarch64", python="3.8.0", executable="/usr/bin/python3.8",
                       glibc="2.27", os="Ubuntu 18.04", free_mb=9, jetson=jetson_facts(raw))
    with pytest.raises(ShipError, match=r"JetPack 4\.6\.1.*Python 3\.6.*cp38"):
        plan_runtime(facts, None, "required", "nano")


def test_preferred_accelerator_installs_the_cpu_fallback_loudly() -> None:
    plan = plan_runtime(_facts("jp6", TRT_MISSING), None, "preferred")
    assert plan.requirements == ("onnxruntime", "numpy<2")
    assert "every figure will be the CPU's" in plan.warnings[0]


def test_other_boards_keep_the_default_plan() -> None:
    facts = BoardFacts(machine="aarch64", python="3.11.2", executable="/usr/bin/python3",
                       glibc="2.36", os="Debian", free_mb=1)
    assert plan_runtime(facts, None, "required").requirements is None
    assert facts.platform_key == "aarch64-cp311-glibc2.36"
    assert jetson_facts({"tegra_release": "", "packages": "ii \tlibc6\t2.36\n"}) is None


def test_ort_source_inventory_overrides_profile(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("all:\n  hosts:\n    j:\n      edgeship_profile: jetson-orin-nano\n"
                   "      edgeship_ort_index: https://example.invalid/simple\n")
    board = load_inventory(inv).board("j")
    profile = load_profile("jetson-orin-nano")
    assert ort_source(board, profile) == OrtSource(None, "https://example.invalid/simple")
    bare = Board(name="k", host="h", profile="jetson-orin-nano")
    assert ort_source(bare, profile) is None


@pytest.mark.parametrize("hostvars", [
    "edgeship_ort_wheel: /tmp/onnxruntime.tar.gz",
    "edgeship_ort_index: ftp://mirror/simple",
    "edgeship_ort_wheel: /a/x.whl, edgeship_ort_index: 'https://x/simple'",
])
def test_inventory_ort_fields_are_validated(tmp_path: Path, hostvars: str) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"all:\n  hosts:\n    j: {{edgeship_profile: sim, {hostvars}}}\n")
    with pytest.raises(ConfigError, match="ort_"):
        load_inventory(inv)


def test_profile_runtime_fields_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("arch: aarch64\nartifacts: [{format: tflite, runner: tensorrt}]\n")
    with pytest.raises(ConfigError, match="ONNX artifacts only"):
        load_profile(str(bad))
    bad.write_text("arch: aarch64\nartifacts: [{format: onnx}]\nruntime: {accelerator: always}\n")
    with pytest.raises(ConfigError, match="accelerator"):
        load_profile(str(bad))


@pytest.mark.ssh
def test_probe_reads_a_simulated_jetson(provisioned: Board, sim_paths: Paths,
                                        tmp_path: Path) -> None:
    """The real probe over SSH, reading the captured JP6 files under the board's sysroot: a
    Jetson without TensorRT (this host has none) is detected and refused for a GPU profile."""
    board = provisioned.model_copy(update={"sysroot": str(make_sysroot(tmp_path, "jp6")),
                                           "profile": "jetson-orin-nano"})
    with open_transport(board, sim_paths) as tr:
        facts = probe_board(tr)
    jet = facts.jetson
    assert jet is not None and (jet["l4t"], jet["jetpack"], jet["tensorrt"]) == (
        "36.4.7", "6.2.1", "10.3.0.30")
    assert jet["tensorrt_python"] is None and "tensorrt" in jet["tensorrt_python_error"]
    with pytest.raises(ShipError, match="python3-libnvinfer"):
        runtime_plan(board, facts)
    with open_transport(provisioned, sim_paths) as tr:
        assert probe_board(tr).jetson is None  # the same board without the sysroot


def test_health_probe_leaves_time_for_engine_builds() -> None:
    from profiler.health import SMOKE_TIMEOUT_S, smoke_profile

    assert smoke_profile(load_profile("jetson-orin-nano")).profiling.timeout_s == 1800
    assert smoke_profile(load_profile("sim")).profiling.timeout_s == SMOKE_TIMEOUT_S
