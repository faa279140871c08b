"""The on-board agent: one self-contained script shipped inside every bundle.

The script itself (``edgeship_agent.py``) runs on the board's Python (3.8+) with only the
standard library, numpy and the board's runtime; this package only tells the host where it is.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["AGENT_NAME", "AGENT_PATH", "AGENT_VERSION", "board_files"]

AGENT_NAME = "edgeship_agent.py"
"""The agent's file name in a bundle and a release (the host runs ``<release>/edgeship_agent.py``)."""
AGENT_PATH: Path = Path(__file__).resolve().parent / AGENT_NAME
"""The agent script, to copy into a bundle as ``edgeship_agent.py``."""


def board_files() -> dict[str, Path]:
    """What the profiler needs inside every bundle: ``{AGENT_NAME: AGENT_PATH}``.

    The orchestration passes this to ``converters.build_bundle(board_files=...)``; the converters
    never import the profiler.
    """
    return {AGENT_NAME: AGENT_PATH}


def _version() -> str:
    """``AGENT_VERSION`` as written in the script, read without importing it."""
    match = re.search(r'^AGENT_VERSION = "([^"]+)"', AGENT_PATH.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"{AGENT_PATH} defines no AGENT_VERSION")
    return match.group(1)


AGENT_VERSION: str = _version()
"""The agent's version (also reported in its JSON)."""
