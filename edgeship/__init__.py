"""edgeship: convert a model for a device profile, ship it to a board, measure it there.

The stages live in top-level packages beneath this one (see docs/architecture.md):
``core`` (errors, paths, contracts), ``profiles`` and ``devices`` (configuration),
``converters`` (source → bundle), ``runtimes`` (bundle → release on a board), ``profiler``
(release → measurements → report). This package is the top only: the library API, the deploy
pipeline, the fleet engines and the CLI.
"""

from core import __version__

__all__ = ["__version__"]
