"""STAND-IN for ``pycuda.autoinit`` (the real one creates a CUDA context)."""
