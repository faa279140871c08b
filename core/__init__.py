"""The floor of the house: what every stage may import, importing nothing of ours.

``core.errors`` (the one error tree), ``core.paths`` (host state; the environment read once),
``core.logs`` (one warning path for the user) and ``core.contracts`` (the typed documents that
cross stages: the bundle manifest, the agent's result, the report — one schema version each).
"""

__version__ = "0.1.0"
"""edgeship's version (re-exported as ``edgeship.__version__``)."""

__all__ = ["__version__"]
