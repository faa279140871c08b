"""The package's public surface and its import weight."""

from __future__ import annotations

import subprocess
import sys

import runtimes


def test_public_api_is_pinned() -> None:
    assert sorted(runtimes.__all__) == [
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
        "Transport",
        "build_wheelhouse",
        "ensure_runtime",
        "fingerprint",
        "probe_board",
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


def test_both_engines_implement_the_transport_protocol() -> None:
    """SSHTransport and the Ansible engine's transport have every member of the protocol, with
    the same keyword arguments, so shipping/provisioning/measuring run unchanged on either."""
    import inspect

    from edgeship._ansible_transport import AnsibleTransport
    from runtimes import SSHTransport, Transport

    members = [m for m in vars(Transport) if not m.startswith("_")]
    assert {"run", "run_script", "put", "get", "where", "close"} <= set(members)
    for cls in (SSHTransport, AnsibleTransport):
        for name in members:
            want, got = getattr(Transport, name), getattr(cls, name, None)
            assert got is not None, f"{cls.__name__} lacks {name}"
            if callable(want):
                wanted = set(inspect.signature(want).parameters)
                assert wanted <= set(inspect.signature(got).parameters), (cls.__name__, name)
