"""Parsers for board tools' text output: ``tegrastats``, ``trtexec``, ``vcgencmd``, and the
JetPack facts of a Jetson (``/etc/nv_tegra_release``, package lists).

The agent returns these tools' output raw; the host parses it here, so a new output format is
handled without re-shipping the agent. Every parser is pure (text in, dict out), never raises on
unknown fields, and is tested on output captured from real boards (``tests/runtimes/data``).
"""

from .board import board_state, enrich, parse_jetson_clocks, parse_nvpmodel, thermal_summary
from .jetpack import jetpack_for_l4t, jetson_software, parse_nv_tegra_release, parse_packages
from .tegrastats import energy_per_inference, parse_tegrastats_line, summarize_tegrastats
from .trtexec import parse_trtexec
from .vcgencmd import THROTTLE_BITS, decode_throttled, parse_vcgencmd

__all__ = ["THROTTLE_BITS", "board_state", "decode_throttled", "energy_per_inference", "enrich",
           "jetpack_for_l4t", "jetson_software", "parse_jetson_clocks", "parse_nv_tegra_release",
           "parse_nvpmodel", "parse_packages", "parse_tegrastats_line", "parse_trtexec",
           "parse_vcgencmd", "summarize_tegrastats", "thermal_summary"]
