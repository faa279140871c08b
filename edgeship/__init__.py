"""edgeship: convert a model for a device profile, ship it to a board, profile it there.

The stages live in top-level packages: ``converters`` (host), ``runtimes`` (host → board),
``devices`` (inventory), ``profiles`` (per-device profiles). This package holds what ties them
together: the error tree, paths, the deploy pipeline, reports and the CLI.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
