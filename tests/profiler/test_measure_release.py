"""Host-side validation of the agent's JSON and the host-side timeout (no board needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from core.errors import MeasurementError
from devices import Board
from profiler import measure_release, parse_agent_output
from profiles import load_profile
from runtimes import CommandTimeout, RunResult

BOARD = Board(name="sim", host="127.0.0.1", profile="sim", root="/srv/edge", python="/opt/py")


def _doc(**changes: Any) -> dict[str, Any]:
    latency = dict(min=1.0, mean=1.2, std=0.1, p50=1.1, p90=1.3, p95=1.4, p99=1.5, max=2.0)
    result = {
        "key": "onnx-fp32",
        "ok": True,
        "error": None,
        "runtime": "onnxruntime",
        "runtime_version": "1.31.1",
        "providers": ["CPUExecutionProvider"],
        "threads": 1,
        "load_ms": 3.0,
        "first_inference_ms": 1.0,
        "warmup": 1,
        "runs": 10,
        "latency_ms": latency,
        "throughput_ips": 900.0,
        "rss_mb": {"before_load": 30.0, "after_load": 40.0, "peak": 41.0},
    }
    names = ("hostname", "machine", "system", "release", "cpu", "os")
    device: dict[str, Any] = dict.fromkeys(names, "x")
    device.update(cores=2, ram_mb=1000, python="3.8.10", temps_c={})
    doc = {
        "schema": 2,
        "agent_version": "0.1.0",
        "release": "abc",
        "device": device,
        "results": [result],
    }
    doc.update(changes)
    return doc


class _FakeTransport:
    """Stands in for SSHTransport: records argv, returns a canned result or raises."""

    def __init__(self, result: RunResult | Exception) -> None:
        self.result = result
        self.argv: list[str] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        input: bytes | None = None,
    ) -> RunResult:
        self.argv, self.timeout = list(argv), timeout
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_valid_document_passes() -> None:
    assert parse_agent_output(json.dumps(_doc()))["release"] == "abc"


@pytest.mark.parametrize(
    "stdout, problem",
    [
        ("<html>502 Bad Gateway</html>", "not JSON"),
        ("", "not JSON"),
        (json.dumps([1, 2]), "not a JSON object"),
        (json.dumps(_doc(schema=1)), "schema 1, expected 2"),
        (json.dumps({k: v for k, v in _doc().items() if k != "device"}), "no 'device'"),
        (json.dumps(_doc(results=[{"key": "x", "ok": True}])), "result 'x' lacks 'error'"),
    ],
)
def test_bad_documents_are_measurement_errors(stdout: str, problem: str) -> None:
    with pytest.raises(MeasurementError) as info:
        parse_agent_output(stdout, "sim")
    assert problem in str(info.value) and stdout[:40] in str(info.value)


def test_error_quotes_at_most_200_chars() -> None:
    with pytest.raises(MeasurementError) as info:
        parse_agent_output("x" * 5000)
    assert "x" * 200 in str(info.value) and "x" * 201 not in str(info.value)


def test_runs_the_current_agent_with_the_profile_options() -> None:
    fake = _FakeTransport(RunResult(0, json.dumps(_doc()), ""))
    measure_release(fake, BOARD, load_profile("sim"))  # type: ignore[arg-type]
    assert fake.argv[:5] == ["timeout", "-k", "5", "300", "/opt/py"]
    assert fake.argv[5:8] == [
        "/srv/edge/current/edgeship_agent.py",
        "--release",
        "/srv/edge/current",
    ]
    assert fake.argv[fake.argv.index("--runs") + 1] == "200" and fake.timeout == 310


def test_host_side_timeout_is_a_measurement_error() -> None:
    fake = _FakeTransport(CommandTimeout("board 'sim': `…` did not finish within 310 s"))
    with pytest.raises(MeasurementError, match="did not finish within 300 s"):
        measure_release(fake, BOARD, load_profile("sim"))  # type: ignore[arg-type]


def test_agent_failure_and_wrong_release_are_measurement_errors() -> None:
    with pytest.raises(MeasurementError, match="exited 2: agent: cannot read"):
        measure_release(
            _FakeTransport(RunResult(2, "", "agent: cannot read x/manifest.json")),  # type: ignore[arg-type]
            BOARD,
            load_profile("sim"),
        )
    with pytest.raises(MeasurementError, match="measured release 'abc', not 'def'"):
        measure_release(
            _FakeTransport(RunResult(0, json.dumps(_doc()), "")),  # type: ignore[arg-type]
            BOARD,
            load_profile("sim"),
            release_id="def",
        )


def test_the_agent_and_the_host_contract_share_one_schema_version() -> None:
    """The agent cannot import core.contracts (it runs on the board with the stdlib and numpy);
    its ``SCHEMA`` must still be the one the host validates against."""
    import re

    from core.contracts import AGENT_SCHEMA
    from profiler import AGENT_PATH

    found = re.search(r"^SCHEMA = (\d+)$", AGENT_PATH.read_text(), re.M)
    assert found is not None and int(found.group(1)) == AGENT_SCHEMA


@pytest.mark.parametrize(("change", "problem"), [
    ({"device": {"hostname": "b"}}, "device lacks 'machine'"),
    ({"results": [{**_doc()["results"][0], "latency_ms": {"min": 1}}]}, "incomplete latency_ms"),
    ({"results": [{**_doc()["results"][0], "ok": False, "error": ""}]},
     "failed without an error message"),
])
def test_contract_problems_are_named(change: dict, problem: str) -> None:
    with pytest.raises(MeasurementError, match=problem):
        parse_agent_output(json.dumps({**_doc(), **change}), "sim")
