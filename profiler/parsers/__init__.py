"""Parsers for board tools' text output: ``tegrastats``, ``trtexec``, ``vcgencmd`` (a Jetson's
JetPack facts, which provisioning needs too, are parsed in :mod:`runtimes.jetpack_facts`).

The agent returns these tools' output raw; the host parses it here, so a new output format is
handled without re-shipping the agent. Every parser is pure (text in, dict out), never raises on
unknown fields, and is tested on output captured from real boards (``tests/profiler/data``).
"""

from .board import board_state, enrich, parse_jetson_clocks, parse_nvpmodel, thermal_summary
from .tegrastats import energy_per_inference, parse_tegrastats_line, summarize_tegrastats
from .trtexec import parse_trtexec
from .vcgencmd import THROTTLE_BITS, decode_throttled, parse_vcgencmd

__all__ = ["THROTTLE_BITS", "board_state", "decode_throttled", "energy_per_inference", "enrich", "parse_jetson_clocks",
           "parse_nvpmodel", "parse_tegrastats_line", "parse_trtexec",
           "parse_vcgencmd", "summarize_tegrastats", "thermal_summary"]
