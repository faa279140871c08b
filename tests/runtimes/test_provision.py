"""Offline provisioning: board facts, wheel tags, the wheelhouse cache, an idempotent venv."""

from __future__ import annotations

from pathlib import Path

import pytest
from rt_kit import open_transport

from core.errors import ShipError
from core.paths import Paths
from devices import Board
from runtimes import BoardFacts, build_wheelhouse, probe_board, provision
from runtimes.provision import wheelhouse_cache


def _facts(
    machine: str = "x86_64", python: str = "3.11.2", glibc: str | None = "2.36"
) -> BoardFacts:
    return BoardFacts(
        machine=machine,
        python=python,
        executable="/usr/bin/python3",
        glibc=glibc,
        os="Debian GNU/Linux 12 (bookworm)",
        free_mb=10_000,
    )


def test_manylinux_tags_follow_the_board_glibc() -> None:
    tags = _facts("aarch64", glibc="2.28").manylinux_tags()
    assert tags[0] == "manylinux_2_28_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux_2_29_aarch64" not in tags
    assert not any(t.startswith("manylinux1") for t in tags)
    assert _facts().platform_key == "x86_64-cp311-glibc2.36" and _facts().abi == "cp311"


def test_musl_boards_are_refused_with_a_reason() -> None:
    with pytest.raises(ShipError, match="without glibc"):
        _facts(glibc=None).manylinux_tags()


def test_wheelhouse_cache_is_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESHIP_WHEELHOUSE", str(tmp_path))
    assert wheelhouse_cache() == tmp_path
    monkeypatch.delenv("EDGESHIP_WHEELHOUSE")
    assert wheelhouse_cache() == Path.home() / ".cache" / "edgeship" / "wheelhouse"


def test_no_fitting_wheel_names_the_package(tmp_path: Path) -> None:
    old = _facts(glibc="2.17")  # older than every runtime's floor
    with pytest.raises(
        ShipError, match=r"no wheel of onnxruntime fits the board .*glibc 2\.17.*2\.28"
    ):
        build_wheelhouse(old, packages=("onnxruntime==1.31.1",), cache_dir=tmp_path)


@pytest.mark.ssh
def test_probe_reads_the_board(provisioned: Board, sim_paths: Paths) -> None:
    with open_transport(provisioned, sim_paths) as tr:
        facts = probe_board(tr)
    assert facts.machine == "x86_64" and facts.glibc == "2.36"
    assert facts.python == "3.11.2" and facts.executable.startswith("/usr/bin/python3")
    assert "Debian" in facts.os and facts.free_mb > 0


@pytest.mark.ssh
def test_provisioning_is_idempotent_and_offline(
    provisioned: Board, sim_paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        provisioned.python.endswith("/board/venv/bin/python") and Path(provisioned.python).exists()
    )
    with open_transport(provisioned, sim_paths) as tr:
        facts = probe_board(tr)
        wheelhouse = build_wheelhouse(facts)
        monkeypatch.setattr(tr, "put", _no_upload)
        assert provision(tr, provisioned, facts, wheelhouse) == provisioned.python
        res = tr.run(
            [
                provisioned.python,
                "-c",
                "import onnxruntime, ai_edge_litert.interpreter, numpy; "
                "print(onnxruntime.__version__)",
            ]
        )
    assert res.stdout.strip() == "1.31.1"
    assert (wheelhouse / "requirements.txt").read_text().split()[0] == "onnxruntime==1.31.1"


def _no_upload(*args: object, **kwargs: object) -> int:
    raise AssertionError("an up-to-date board must not receive wheels")
