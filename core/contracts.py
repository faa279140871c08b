"""The typed documents that cross stages, one schema version each.

* :class:`Manifest` — ``manifest.json`` of a bundle: written by ``converters.bundle``, read by
  ``runtimes`` (shipping), the on-board agent and ``profiler.report``.
* :class:`AgentResult` — the JSON the on-board agent prints: the agent is a dependency-free
  script for the board, so it cannot import this; the host validates what it prints
  (``profiler.measure.parse_agent_output``), and a test ties the agent's ``SCHEMA`` to
  :data:`AGENT_SCHEMA`.
* :class:`Report` — ``report.json``, built by ``profiler.report``.

The models pin what a reader relies on (presence, types, invariants such as ordered latency
percentiles) and let each stage add fields (``extra="allow"``), so a new field is not a new
schema; removing or retyping one is, and bumps that document's version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["AGENT_SCHEMA", "BUNDLE_ID", "MANIFEST_SCHEMA", "REPORT_SCHEMA", "AgentResult", "Manifest",
           "ManifestArtifact", "MeasuredArtifact", "Report", "first_problem"]

MANIFEST_SCHEMA = 2
"""2: ``left_out`` (artifacts not built, with stage, tool, cause, tried); fp16 fallbacks named
fp16 with ``requested``."""
AGENT_SCHEMA = 2
"""Must equal ``SCHEMA`` in ``profiler/agent/edgeship_agent.py`` (tests/profiler check it)."""
REPORT_SCHEMA = 3
"""2: per-artifact samples, thermal, power, ops; regression. 3: ``left_out``."""
BUNDLE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
"""A bundle id, which is also the release's directory name on the board: one plain name."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- the bundle manifest ---------------------------------------------------------------------

class SourceInfo(_Open):
    """Where the bundle's model came from."""

    kind: str
    ref: str
    sha256: str


class FileInfo(_Open):
    """One file of the bundle, as shipped and verified on the board."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class ManifestArtifact(_Open):
    """One verified artifact: its file, its I/O contract, its verdict and how it was made."""

    key: str
    format: Literal["onnx", "tflite"]
    precision: str
    file: str
    size_bytes: int = Field(ge=0)
    sha256: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    verification: dict[str, Any]
    converter: dict[str, Any]


class LeftOutArtifact(_Open):
    """An artifact not delivered, with the tool's one-line cause."""

    key: str
    stage: str
    tool: str
    cause: str
    tried: list[str] = []
    required: bool = False
    figures: list[dict[str, Any]] = []
    """Each int8 remedy tried, with its gate figures or error (present when there are some)."""


class Manifest(_Open):
    """``manifest.json``."""

    schema_: Literal[2] = Field(alias="schema")
    bundle_id: str = Field(pattern=BUNDLE_ID)
    created: str
    source: SourceInfo
    profile: dict[str, Any]
    recipe: list[dict[str, Any]]
    tools: dict[str, Any]
    data: dict[str, Any]
    reference: dict[str, Any]
    files: dict[str, FileInfo]
    artifacts: list[ManifestArtifact]
    left_out: list[LeftOutArtifact] = []

    @model_validator(mode="after")
    def _files_listed(self) -> Manifest:
        for art in self.artifacts:
            if art.file not in self.files:
                raise ValueError(f"artifact {art.key!r} names {art.file!r}, which files lacks")
        return self


# -- the agent's result document -------------------------------------------------------------

class Latency(_Open):
    """Latency percentiles in ms (ordered)."""

    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Latency:
        if not self.min <= self.p50 <= self.p99 <= self.max:
            raise ValueError("unordered latencies")
        return self


class MeasuredArtifact(_Open):
    """One artifact as the agent measured it (``ok``) or failed to (``error``)."""

    key: str
    ok: bool
    error: str | None
    runtime: Any
    runtime_version: Any
    providers: Any
    threads: Any
    load_ms: Any
    first_inference_ms: Any
    warmup: Any
    runs: Any
    latency_ms: Any
    throughput_ips: Any
    rss_mb: Any

    @model_validator(mode="after")
    def _ok_or_error(self) -> MeasuredArtifact:
        if self.ok:
            lat = self.latency_ms
            if not isinstance(lat, dict) or any(f not in lat for f in Latency.model_fields):
                raise ValueError("has incomplete latency_ms")
            if not lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]:
                raise ValueError("has unordered latencies")
        elif not self.error:
            raise ValueError("failed without an error message")
        return self


class DeviceFacts(_Open):
    """What the agent saw of the board."""

    hostname: Any
    machine: Any
    system: Any
    release: Any
    cpu: Any
    cores: Any
    ram_mb: Any
    python: Any
    os: Any
    temps_c: Any


class AgentResult(_Open):
    """The agent's JSON document (one per run)."""

    schema_: int = Field(alias="schema")
    agent_version: str
    release: str | None
    device: DeviceFacts
    results: list[MeasuredArtifact]

    @model_validator(mode="before")
    @classmethod
    def _schema_first(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("schema") != AGENT_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {AGENT_SCHEMA}")
        return data


# -- the report ------------------------------------------------------------------------------

class Report(_Open):
    """``report.json`` of one board."""

    schema_: Literal[3] = Field(alias="schema")
    edgeship: str
    created: str
    device: str
    board: dict[str, Any]
    profile: str
    bundle: dict[str, Any]
    ship: dict[str, Any]
    device_facts: dict[str, Any]
    agent_version: str | None
    budgets: dict[str, Any]
    artifacts: list[dict[str, Any]]
    left_out: list[dict[str, Any]]
    verdict: Literal["pass", "fail", "error", "partial"]


def first_problem(error: ValidationError, doc: Any) -> str:
    """The first problem of a failed validation, in one short phrase (``no 'device'``,
    ``result 'x' lacks 'error'``, ``schema 1, expected 2``)."""
    err = error.errors()[0]
    loc, kind = [str(p) for p in err["loc"]], err["type"]
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if loc and loc[0] == "results" and len(loc) > 1:
        try:
            key = doc["results"][int(loc[1])].get("key")
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            key = None
        field = loc[2] if len(loc) > 2 else None
        if kind == "missing" and field:
            return f"result {key!r} lacks {field!r}"
        return f"result {key!r} " + (f"field {field!r}: {msg}" if field else msg)
    if kind == "missing":
        return (f"{loc[0]} lacks {loc[-1]!r}" if len(loc) > 1 else f"no {loc[0]!r}")
    where = ".".join(loc)
    return f"{where}: {msg}" if where else msg
