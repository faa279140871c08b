"""Where edgeship keeps its state on the host.

Everything lives under one directory, ``$EDGESHIP_HOME`` (default: ``.edgeship`` in the current
working directory), so a checkout is self-contained and tests can point it at a ``tmp_path``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Paths", "default_paths"]


@dataclass(frozen=True)
class Paths:
    """The host-side state layout."""

    home: Path

    @property
    def bundles(self) -> Path:
        """Content-addressed artifact cache: ``bundles/<bundle-id>/``."""
        return self.home / "bundles"

    @property
    def sim(self) -> Path:
        """State of the built-in simulated boards (keys, sshd config, board root)."""
        return self.home / "sim"

    @property
    def known_hosts(self) -> Path:
        """The project's known_hosts: board host keys pinned by edgeship."""
        return self.home / "known_hosts"

    @property
    def reports(self) -> Path:
        """Saved reports: ``reports/<device>/<timestamp>/``."""
        return Path(os.environ.get("EDGESHIP_REPORTS", self.home.parent / "reports"))


def default_paths() -> Paths:
    """The paths for this process: ``$EDGESHIP_HOME`` or ``./.edgeship``."""
    home = Path(os.environ.get("EDGESHIP_HOME", Path.cwd() / ".edgeship")).resolve()
    return Paths(home=home)
