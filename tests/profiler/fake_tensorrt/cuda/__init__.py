"""STAND-IN for cuda-python (tests only; see ../README.md)."""
