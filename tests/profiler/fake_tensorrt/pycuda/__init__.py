"""STAND-IN for pycuda (tests only; see ../README.md). "Device" memory is host memory."""

VERSION_TEXT = "2024.1 (stand-in)"
