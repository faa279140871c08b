"""The package's public surface and its import weight."""

from __future__ import annotations

import subprocess
import sys

import runtimes


def test_public_api_is_pinned() -> None:
    assert sorted(runtimes.__all__) == [
        "AGENT_PATH",
        "AGENT_VERSION",
        "BoardFacts",
        "CommandTimeout",
        "ConnectionLost",
        "Progress",
        "RunResult",
        "SSHTransport",
        "ShipProgress",
        "ShipResult",
        "SimBoard",
        "SimStatus",
        "build_wheelhouse",
        "ensure_runtime",
        "fingerprint",
        "parse_agent_output",
        "probe_board",
        "measure_release",
        "provision",
        "read_bundle",
        "resolve_board",
        "rollback",
        "ship_bundle",
    ]


def test_import_stays_light() -> None:
    code = (
        "import sys, runtimes; heavy = [m for m in ('numpy', 'onnxruntime', 'tensorflow', "
        "'torch', 'onnx') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
