"""STAND-IN for ``pycuda.driver``: allocations are ctypes buffers on the host (tests only)."""

import ctypes
import time

import numpy as np

_LIVE = {}


class DeviceAllocation(object):
    def __init__(self, nbytes):
        self.buf = ctypes.create_string_buffer(int(nbytes))
        _LIVE[int(self)] = self

    def __int__(self):
        return ctypes.addressof(self.buf)

    def free(self):
        _LIVE.pop(int(self), None)


def mem_alloc(nbytes):
    return DeviceAllocation(nbytes)


def pagelocked_empty(shape, dtype):
    return np.empty(shape, dtype)


def memcpy_htod_async(dest, src, stream=None):
    ctypes.memmove(int(dest), src.ctypes.data, src.nbytes)


def memcpy_dtoh_async(dest, src, stream=None):
    ctypes.memmove(dest.ctypes.data, int(src), dest.nbytes)


def mem_get_info():
    used = sum(len(a.buf) for a in _LIVE.values())
    return 4 * 2 ** 30 - used, 4 * 2 ** 30


class Stream(object):
    handle = 7

    def synchronize(self):
        return None


class Event(object):
    t = 0.0

    def record(self, stream=None):
        self.t = time.perf_counter()
        return self

    def time_since(self, start):
        return (self.t - start.t) * 1000.0


class _Device(object):
    def name(self):
        return "Maxwell (STAND-IN, no GPU)"


class Context(object):
    @staticmethod
    def get_device():
        return _Device()
