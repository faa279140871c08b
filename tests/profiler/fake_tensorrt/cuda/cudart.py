"""STAND-IN for ``cuda.cudart`` (cuda-python): "device" memory is host memory (tests only).

Same call shapes as cuda-python: every function returns a tuple whose first item is a
``cudaError_t``.
"""

import ctypes
import enum
import os
import time

if os.environ.get("FAKE_CUDA_PYTHON", "1") == "0":
    raise ImportError("stand-in cuda-python switched off (FAKE_CUDA_PYTHON=0)")

__all__ = ["cudaError_t", "cudaMemcpyKind"]

_BUFFERS = {}
_TOTAL = 8 * 2 ** 30


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real API's name
    cudaSuccess = 0
    cudaErrorMemoryAllocation = 2


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class _Props(object):
    name = b"Orin (STAND-IN, no GPU)"


class _Event(object):
    t = 0.0


def cudaGetErrorString(err):  # noqa: N802
    return cudaError_t.cudaSuccess, ("stand-in error %d" % int(err)).encode()


def cudaMalloc(nbytes):  # noqa: N802
    buf = ctypes.create_string_buffer(int(nbytes))
    ptr = ctypes.addressof(buf)
    _BUFFERS[ptr] = buf
    return cudaError_t.cudaSuccess, ptr


def cudaFree(ptr):  # noqa: N802
    _BUFFERS.pop(ptr, None)
    return (cudaError_t.cudaSuccess,)


def cudaMemcpyAsync(dst, src, nbytes, kind, stream):  # noqa: N802
    ctypes.memmove(dst, src, nbytes)
    return (cudaError_t.cudaSuccess,)


def cudaStreamCreate():  # noqa: N802
    return cudaError_t.cudaSuccess, 1


def cudaStreamSynchronize(stream):  # noqa: N802
    return (cudaError_t.cudaSuccess,)


def cudaEventCreate():  # noqa: N802
    return cudaError_t.cudaSuccess, _Event()


def cudaEventRecord(event, stream):  # noqa: N802
    event.t = time.perf_counter()
    return (cudaError_t.cudaSuccess,)


def cudaEventElapsedTime(start, end):  # noqa: N802
    return cudaError_t.cudaSuccess, (end.t - start.t) * 1000.0


def cudaMemGetInfo():  # noqa: N802
    used = sum(len(b) for b in _BUFFERS.values())
    return cudaError_t.cudaSuccess, _TOTAL - used, _TOTAL


def cudaGetDeviceProperties(device):  # noqa: N802
    return cudaError_t.cudaSuccess, _Props()


def buffer_at(ptr, nbytes):
    """The stand-in's memory at *ptr* as a ctypes char array (used by the fake engine)."""
    return (ctypes.c_char * nbytes).from_address(ptr)
