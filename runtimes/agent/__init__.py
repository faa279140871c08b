"""The on-board agent: one self-contained script shipped inside every bundle.

The script itself (``edgeship_agent.py``) runs on the board's Python (3.8+) with only the
standard library, numpy and the board's runtime; this package only tells the host where it is.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["AGENT_PATH", "AGENT_VERSION"]

AGENT_PATH: Path = Path(__file__).resolve().parent / "edgeship_agent.py"
"""The agent script, to copy into a bundle as ``edgeship_agent.py``."""


def _version() -> str:
    """``AGENT_VERSION`` as written in the script, read without importing it."""
    match = re.search(r'^AGENT_VERSION = "([^"]+)"', AGENT_PATH.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"{AGENT_PATH} defines no AGENT_VERSION")
    return match.group(1)


AGENT_VERSION: str = _version()
"""The agent's version (also reported in its JSON)."""
