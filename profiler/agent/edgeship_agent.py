#!/usr/bin/env python3
"""edgeship on-board agent: measure every artifact of a release, print ONE JSON document.

    python edgeship_agent.py --release DIR [--only KEY] [--warmup N] [--warmup-s S]
        [--runs N] [--duration-s S] [--until-stable] [--threads N] [--pin CPUS] [--batch N]
        [--providers a,b] [--op-top N] [--samples N] [--trtexec] [--timeout S]
        [--tensorrt KEY,...] [--engine-cache DIR] [--accelerator MODE] [--sysroot DIR]

Self-contained: Python 3.8+, the standard library, numpy and whichever runtime the board has
(onnxruntime; ai_edge_litert, else tflite_runtime, else tensorflow.lite; on a Jetson, JetPack's
TensorRT with cuda-python or pycuda for ``--tensorrt`` artifacts). Each result says where the
artifact really ran (``accelerator``). Each artifact runs in
its own child process (``--only KEY --child``) so its peak RSS is its own and a crash or hang is
reported as ``ok: false`` instead of taking the others down. Logs go to stderr; stdout carries
only the JSON document.

Board tools (``vcgencmd``, ``tegrastats``, ``nvpmodel``, ``trtexec``) are run when present and
their output is returned *raw*; the host parses it (``runtimes/parsers``), so a new output
format is fixed on the host without re-shipping. One file on purpose: it is copied into every
bundle, so it is longer than the house's usual module.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

AGENT_VERSION = "0.3.0"
SCHEMA = 2
log = logging.getLogger("edgeship-agent")
RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime",
                 "tensorflow", "numpy", "tensorrt", "cuda-python", "pycuda")
QEMU_NOTE = ("runs under qemu-user emulation: latency is not the real board's, and RSS includes "
             "the emulator's own memory (inflated)")


# -- device facts ------------------------------------------------------------------------------
def _read(path):
    """Text of *path*, or '' when it cannot be read."""
    try:
        with open(path) as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _cpu_model(cpuinfo):
    """The CPU model from /proc/cpuinfo ('model name', or the ARM 'Model'/'Hardware' lines)."""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


def _meminfo_mb(key):
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024.0)
    return None


def _os_name():
    info = {}
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        info[key] = value.strip().strip('"')
    return info.get("PRETTY_NAME") or info.get("NAME") or platform.platform()


def _temps():
    """Thermal zone temperatures in °C, keyed by zone type."""
    temps = {}
    base = "/sys/class/thermal"
    for zone in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        raw = _read(os.path.join(base, zone, "temp")).strip()
        if not raw.lstrip("-").isdigit():
            continue
        kind = _read(os.path.join(base, zone, "type")).strip() or zone
        temps[kind if kind not in temps else zone] = int(raw) / 1000.0
    return temps


def _freqs_mhz():
    """Current frequency of each CPU (cpufreq), in MHz; {} when cpufreq is not exposed."""
    out = {}
    base = "/sys/devices/system/cpu"
    for cpu in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        raw = _read(os.path.join(base, cpu, "cpufreq", "scaling_cur_freq")).strip()
        if cpu[3:].isdigit() and raw.isdigit():
            out[cpu] = int(raw) / 1000.0
    return out


def detect_emulation(machine, cpuinfo, read=_read, readlink=os.readlink, ppid=None):
    """In-guest signals that this process runs under qemu-user; ``{"emulated", "signals"}``.

    qemu-user fakes ``/proc/self/*`` but not other processes' ``/proc/<pid>/exe`` (the parent's
    points at the qemu binary), and it passes the host's ``/proc/cpuinfo`` through.
    """
    signals = []
    try:
        parent = readlink("/proc/%d/exe" % (os.getppid() if ppid is None else ppid))
    except OSError:
        parent = ""
    if "qemu" in os.path.basename(parent):
        signals.append("parent process runs %s" % parent)
    x86 = "GenuineIntel" in cpuinfo or "AuthenticAMD" in cpuinfo
    if x86 and machine not in ("x86_64", "i386", "i686"):
        signals.append("/proc/cpuinfo describes an x86 CPU but the machine is %s" % machine)
    qemu_name = {"aarch64": "aarch64", "armv7l": "arm"}.get(machine)
    if qemu_name and read("/proc/sys/fs/binfmt_misc/qemu-" + qemu_name).startswith("enabled"):
        signals.append("binfmt_misc has an enabled qemu-%s handler" % qemu_name)
    result = {"emulated": bool(signals), "signals": signals}
    if signals:
        result["note"] = QEMU_NOTE
    return result


def _dist_versions():
    """Installed versions of the runtimes (and numpy), read from metadata without importing."""
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8 is not supported; keep the agent alive anyway
        return {}
    out = {}
    for dist in RUNTIME_DISTS:
        try:
            out[dist] = metadata.version(dist)
        except Exception:  # noqa: BLE001 - absent distribution
            continue
    return out


def _tool(argv, timeout=10.0):
    """stdout+stderr of a board tool, or None when it is not installed."""
    if not shutil.which(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "error: %s" % exc
    return proc.stdout.decode("utf-8", "replace").strip()


def device_facts(sysroot="/"):
    """The device fingerprint: model, arch, CPU, memory, OS, Python, runtimes, L4T, emulation."""
    uname = platform.uname()
    cpuinfo = _read("/proc/cpuinfo")
    facts = {
        "hostname": socket.gethostname(), "machine": uname.machine, "system": uname.system,
        "release": uname.release, "cpu": _cpu_model(cpuinfo), "cores": os.cpu_count(),
        "ram_mb": _meminfo_mb("MemTotal"), "python": platform.python_version(),
        "os": _os_name(), "temps_c": _temps(), "cpu_freq_mhz": _freqs_mhz(),
        "model": _read("/proc/device-tree/model").strip("\x00\n ") or None,
        "runtimes": _dist_versions(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip() or None,
        "emulation": detect_emulation(uname.machine, cpuinfo),
    }
    l4t = _read(os.path.join(sysroot, "etc", "nv_tegra_release")).strip()
    if l4t:
        facts["l4t"] = l4t.splitlines()[0]
    jetson = {"nvpmodel": _tool(["nvpmodel", "-q"]), "jetson_clocks": _tool(["jetson_clocks",
                                                                             "--show"])}
    if l4t or any(jetson.values()):
        jetson["packages"] = _jetpack_packages(sysroot)
        facts["jetson"] = jetson
    return facts


def _jetpack_packages(sysroot):
    """``dpkg-query`` rows of the JetPack packages (L4T, TensorRT, cuDNN, CUDA), raw."""
    admin = [] if sysroot in ("", "/") else ["--admindir=" + os.path.join(sysroot, "var/lib/dpkg")]
    return _tool(["dpkg-query"] + admin + [
        "-W", "-f=${db:Status-Abbrev}\t${Package}\t${Version}\n", "nvidia-l4t-core", "tensorrt",
        "libnvinfer[0-9]*", "python3-libnvinfer", "libcudnn[0-9]*", "cuda-cudart-[0-9]*"])


def _rss_mb(field="VmRSS"):
    """This process's resident memory (or its peak with ``VmHWM``) in MB."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024.0, 2)
    return None


# -- watching the board while it runs ------------------------------------------------------------
def vcgencmd_snapshot():
    """Raw ``vcgencmd`` answers (Raspberry Pi), or None when the tool is absent."""
    if not shutil.which("vcgencmd"):
        return None
    return {"get_throttled": _tool(["vcgencmd", "get_throttled"], 5),
            "measure_temp": _tool(["vcgencmd", "measure_temp"], 5),
            "measure_clock_arm": _tool(["vcgencmd", "measure_clock", "arm"], 5)}


def thermal_snapshot():
    temps = _temps()
    freqs = _freqs_mhz()
    return {"temps_c": temps, "cpu_freq_mhz": freqs, "vcgencmd": vcgencmd_snapshot()}


class Sampler(object):
    """A daemon thread reading temperatures and clocks every *interval* s (sysfs: cheap)."""

    def __init__(self, interval):
        self.interval = interval
        self.timeline = []
        self._stop = threading.Event()
        self._vcgencmd = shutil.which("vcgencmd")
        self._thread = threading.Thread(target=self._loop, name="edgeship-sampler")
        self._thread.daemon = True
        self.t0 = time.perf_counter()

    def start(self):
        self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.interval):
            temps = _temps()
            freqs = list(_freqs_mhz().values())
            point = {"t": round(time.perf_counter() - self.t0, 3),
                     "temp_c": max(temps.values()) if temps else None,
                     "freq_mhz": round(sum(freqs) / len(freqs), 1) if freqs else None}
            if self._vcgencmd:
                point["throttled"] = _tool(["vcgencmd", "get_throttled"], 5)
            if len(self.timeline) < 600:
                self.timeline.append(point)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return self.timeline


class Tegrastats(object):
    """``tegrastats --interval MS`` in the background; lines stamped with their arrival time."""

    def __init__(self, interval_ms, t0):
        self.interval_ms = interval_ms
        self.lines = []
        self.t0 = t0
        self.proc = subprocess.Popen(["tegrastats", "--interval", str(interval_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._read, name="edgeship-tegrastats")
        self._thread.daemon = True
        self._thread.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            if len(self.lines) < 3000:
                self.lines.append([round(time.perf_counter() - self.t0, 3),
                                   raw.decode("utf-8", "replace").strip()])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=3)
        return {"interval_ms": self.interval_ms, "lines": self.lines}


# -- inputs ------------------------------------------------------------------------------------
def _sample_array(samples, spec):
    """The samples.npz array that feeds input *spec* (source name, else the only array)."""
    for name in (spec.get("source_name"), spec.get("name")):
        if name and name in samples.files:
            return samples[name]
    usable = [k for k in samples.files if k != "labels" and not k.startswith("calibration.")]
    if len(usable) == 1:
        return samples[usable[0]]
    raise KeyError("samples.npz has no array for input %r (has %s)"
                   % (spec.get("source_name") or spec.get("name"), ", ".join(samples.files)))


def prepare_feeds(samples, specs, limit=32, batch=1):
    """Per feed, one list of arrays shaped as the artifact takes them, transposed.

    samples.npz holds samples on its first axis (docs/architecture.md). An input whose manifest
    ``batch_axis`` is 0 (or absent) gets *batch* samples stacked along axis 0; one whose
    ``batch_axis`` is null takes each sample whole (recurrent state, scalars): no batch to stack.
    """
    import numpy as np
    arrays = [_sample_array(samples, spec) for spec in specs]
    count = min(min(len(a) for a in arrays), limit)
    if count == 0:
        raise ValueError("samples.npz holds no samples")
    feeds = []
    for i in range(count):
        rows = [(i + j) % count for j in range(batch)]
        row = []
        for arr, spec in zip(arrays, specs):
            x = np.asarray(arr[i] if spec.get("batch_axis", 0) is None else arr[rows])
            if spec.get("transpose"):
                x = np.transpose(x, spec["transpose"])
            shape = spec.get("shape")
            if shape is not None and x.ndim != len(shape) and x.size == int(np.prod(shape)):
                x = x.reshape(shape)  # a scalar the artifact takes as [1] (onnx2tf)
            row.append(np.require(x, requirements="C"))  # np.ascontiguousarray makes 0-d 1-d
        feeds.append(row)
    return feeds


def feed_batch(specs, batch):
    """The batch the artifact can be fed (1 when an input has no batch axis) and why not more."""
    whole = [s.get("name") for s in specs if s.get("batch_axis", 0) is None]
    if batch > 1 and whole:
        return 1, "no batch axis in input %s (each sample is fed whole)" % ", ".join(whole)
    return batch, None


# -- outputs -----------------------------------------------------------------------------------
def output_order(names, specs):
    """Runtime output indices in the manifest's (the source's) order, matched by tensor name.

    A converter may list outputs in another order than the source (a full-int8 TFLite file:
    ``PartitionedCall:1, :0, :2``); the manifest's ``outputs`` are in source order and name the
    artifact tensor each one is. Without usable names, the runtime's own order.
    """
    wanted = [s.get("name") for s in specs or []]
    if not wanted or len(wanted) != len(names) or sorted(wanted) != sorted(names):
        return list(range(len(names)))
    return [names.index(n) for n in wanted]


def source_outputs(raw, runner, specs):
    """``(source name, array)`` per output in the source's order and layout, dequantized: the
    inverse of each output's ``transpose`` (onnx2tf's NHWC back to NCHW)."""
    import numpy as np
    specs = specs or []
    order = output_order(runner.output_names, specs)
    out = []
    for pos, i in enumerate(order):
        y = np.asarray(raw[i])
        quant = runner.output_quant[i]
        if quant and quant[0] and y.dtype.kind in "iu":
            y = (y.astype(np.float32) - quant[1]) * np.float32(quant[0])
        spec = specs[pos] if len(specs) == len(order) else {}
        perm = spec.get("transpose")
        if perm:
            y = np.transpose(y, [int(k) for k in np.argsort(perm)])
        out.append((spec.get("source_name") or runner.output_names[i], y))
    return out


def describe_outputs(raw, runner, specs):
    """The first inference's outputs as the source has them: name, shape, all finite."""
    import numpy as np
    return [{"name": name, "shape": [int(d) for d in y.shape],
             "finite": bool(np.isfinite(np.asarray(y, dtype=np.float64)).all())}
            for name, y in source_outputs(raw, runner, specs)]


def _quantize(x, dtype, scale, zero_point):
    """Float input → the interpreter's integer type with its own scale and zero point."""
    import numpy as np
    if not np.issubdtype(dtype, np.integer) or np.issubdtype(x.dtype, np.integer) or not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


# -- runtimes ----------------------------------------------------------------------------------
ONNX_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
               "tensor(double)": "float64", "tensor(int64)": "int64", "tensor(int32)": "int32",
               "tensor(int8)": "int8",
               "tensor(uint8)": "uint8", "tensor(bool)": "bool_"}


class OnnxRunner(object):
    """An onnxruntime session with the requested threads and (available) providers."""

    runtime = "onnxruntime"

    @staticmethod
    def import_runtime():
        import onnxruntime
        return onnxruntime

    def __init__(self, path, threads, providers, batch=1, profile_dir=None):
        ort = self.import_runtime()
        self.version = ort.__version__
        self.path, self.threads, self.requested = path, threads, list(providers)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if profile_dir:
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(profile_dir, "ort")
        available = ort.get_available_providers()
        wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.sess = ort.InferenceSession(path, sess_options=opts, providers=wanted)
        self.providers = self.sess.get_providers()
        self.inputs = self.sess.get_inputs()
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.output_quant = [None] * len(self.output_names)
        fixed = [m.shape[0] for m in self.inputs if m.shape and isinstance(m.shape[0], int)]
        self.batch, self.batch_note = batch, None
        if batch > 1 and fixed and fixed[0] != batch:
            self.batch = fixed[0]
            self.batch_note = "model input has a fixed batch of %d" % fixed[0]

    def prepare(self, row):
        import numpy as np
        feed = {}
        for x, meta in zip(row, self.inputs):
            dtype = getattr(np, ONNX_DTYPES.get(meta.type, "float32"))
            feed[meta.name] = x.astype(dtype, copy=False)
        return feed

    def __call__(self, feed):
        return self.sess.run(None, feed)

    def op_profile(self, feeds, runs, top):
        """Per-node times from onnxruntime's profiler, in a second session (after timing)."""
        tmp = tempfile.mkdtemp(prefix="edgeship-prof-")
        try:
            prof = OnnxRunner(self.path, self.threads, self.requested, self.batch, tmp)
            fed = [prof.prepare(f) for f in feeds]
            for i in range(runs):
                prof(fed[i % len(fed)])
            with open(prof.sess.end_profiling()) as fh:
                trace = json.load(fh)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return summarize_ort_trace(trace, self.requested, top, runs)


def summarize_ort_trace(trace, requested, top, runs):
    """Top-*top* nodes by total time, and nodes that ran on CPU although another EP was asked."""
    nodes = {}
    for ev in trace:
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        args = ev.get("args") or {}
        name = ev["name"][:-len("_kernel_time")]
        node = nodes.setdefault(name, {"node": name, "op": args.get("op_name"),
                                       "provider": args.get("provider"), "calls": 0,
                                       "total_us": 0})
        node["calls"] += 1
        node["total_us"] += int(ev.get("dur", 0))
    total = float(sum(n["total_us"] for n in nodes.values())) or 1.0
    ranked = sorted(nodes.values(), key=lambda n: -n["total_us"])
    for n in ranked:
        n["mean_us"] = round(n["total_us"] / float(n["calls"]), 2)
        n["share"] = round(n["total_us"] / total, 4)
    accel = [p for p in requested if p != "CPUExecutionProvider"]
    fallback = [{"node": n["node"], "op": n["op"]} for n in ranked
                if accel and n["provider"] == "CPUExecutionProvider"]
    return {"available": True, "source": "onnxruntime profiler", "runs": runs,
            "nodes": len(nodes), "top": ranked[:top],
            "providers_used": sorted(set(n["provider"] for n in ranked if n["provider"])),
            "fallback_to_cpu": fallback if accel else None}


def _tflite_interpreter_class():
    """The first TFLite interpreter the board has: ai_edge_litert, tflite_runtime, tensorflow."""
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as mod
        return mod.Interpreter, "ai_edge_litert", _dist_version("ai-edge-litert", ai_edge_litert)
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as mod
        return mod.Interpreter, "tflite_runtime", _dist_version("tflite-runtime", tflite_runtime)
    except ImportError:
        pass
    import tensorflow as tf
    return tf.lite.Interpreter, "tensorflow.lite", tf.__version__


def _dist_version(dist, module):
    version = getattr(module, "__version__", None)
    if version:
        return version
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - version is informational only
        return "unknown"


class TFLiteRunner(object):
    """A TFLite interpreter; integer inputs are quantized with the model's own parameters."""

    @staticmethod
    def import_runtime():
        return _tflite_interpreter_class()

    def __init__(self, path, threads, providers, batch=1):
        cls, self.runtime, self.version = self.import_runtime()
        self.interp = cls(model_path=path, num_threads=threads)
        self.batch, self.batch_note = 1, None
        if batch > 1:
            self._resize(batch)
        self.interp.allocate_tensors()
        self.providers = None
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()
        self.output_names = [o["name"] for o in self.outputs]
        self.output_quant = [o.get("quantization") for o in self.outputs]

    def _resize(self, batch):
        try:
            for meta in self.interp.get_input_details():
                self.interp.resize_tensor_input(meta["index"], [batch] + list(meta["shape"][1:]))
            self.interp.allocate_tensors()
            self.batch = batch
        except (ValueError, RuntimeError) as exc:
            self.batch_note = "the interpreter refused batch %d (%s)" % (batch, exc)

    def prepare(self, row):
        feed = []
        for x, meta in zip(row, self.inputs):
            scale, zero_point = meta.get("quantization", (0.0, 0))
            feed.append((meta["index"], _quantize(x, meta["dtype"], scale, zero_point)))
        return feed

    def __call__(self, feed):
        for index, x in feed:
            self.interp.set_tensor(index, x)
        self.interp.invoke()
        return [self.interp.get_tensor(o["index"]) for o in self.outputs]

    def op_profile(self, feeds, runs, top):
        """No per-op timing in the Python interpreter API: list the ops, say so plainly."""
        counts = {}
        try:
            for op in self.interp._get_ops_details():  # noqa: SLF001 - the only op listing
                counts[op.get("op_name")] = counts.get(op.get("op_name"), 0) + 1
        except Exception:  # noqa: BLE001 - informational only
            counts = {}
        return {"available": False, "source": self.runtime,
                "reason": "%s %s exposes no per-op timing to Python (benchmark_model has it)"
                          % (self.runtime, self.version),
                "ops": counts, "top": [], "fallback_to_cpu": None}


RUNNERS = {"onnx": OnnxRunner, "tflite": TFLiteRunner}


# -- TensorRT (Jetson): engines built on the board, timed like trtexec ---------------------------
# Written against TensorRT's documented Python API, 8.x (bindings, execute_async_v2/execute_v2)
# and 10.x (num_io_tensors, set_tensor_address, execute_async_v3); CUDA memory through
# cuda-python (cuda.bindings.runtime or cuda.cudart) when importable, else pycuda.
# NOT RUN ON HARDWARE by edgeship's own tests: those drive it with a stand-in module
# (tests/profiler/fake_tensorrt); the `board`-marked test runs it on a real Jetson.
ENGINE_FORMAT = 1  # bump when the build options change: old cached engines are then rebuilt


class TensorRTUnavailable(Exception):
    """TensorRT (or a CUDA binding for it) cannot be used on this board; the message says why."""


class EngineBuildError(Exception):
    """TensorRT could not build an engine from this ONNX file (unsupported op, …)."""


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable("TensorRT not installed on the board (import tensorrt: %s); "
                                  "install JetPack's python3-libnvinfer" % exc)
    return tensorrt


class _CudaRuntime(object):
    """cuda-python's runtime API (``cuda.bindings.runtime`` 12.6+, ``cuda.cudart`` before)."""

    def __init__(self, module, version):
        self.rt, self.name = module, "cuda-python %s" % version

    def _ck(self, result):
        err = result[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError("CUDA error: %s" % (self.rt.cudaGetErrorString(err)[1],))
        return result[1] if len(result) == 2 else result[1:]

    def malloc(self, nbytes):
        return int(self._ck(self.rt.cudaMalloc(max(1, nbytes))))

    def free(self, ptr):
        self._ck(self.rt.cudaFree(ptr))

    def host_empty(self, shape, dtype):
        import numpy as np
        return np.empty(shape, dtype)

    def stream(self):
        return self._ck(self.rt.cudaStreamCreate())

    def stream_handle(self, stream):
        return int(stream)

    def htod(self, ptr, host, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ck(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, stream))

    def dtoh(self, host, ptr, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ck(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, stream))

    def sync(self, stream):
        self._ck(self.rt.cudaStreamSynchronize(stream))

    def event(self):
        return self._ck(self.rt.cudaEventCreate())

    def record(self, event, stream):
        self._ck(self.rt.cudaEventRecord(event, stream))

    def elapsed_ms(self, start, end):
        return float(self._ck(self.rt.cudaEventElapsedTime(start, end)))

    def mem_info(self):
        free, total = self._ck(self.rt.cudaMemGetInfo())
        return int(free), int(total)

    def device_name(self):
        props = self._ck(self.rt.cudaGetDeviceProperties(0))
        name = props.name
        return (name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)).strip(
            "\x00 ")


class _PyCuda(object):
    """pycuda's driver API with its auto-initialised context."""

    def __init__(self, drv, version):
        self.drv, self.name = drv, "pycuda %s" % version

    def malloc(self, nbytes):
        alloc = self.drv.mem_alloc(max(1, nbytes))
        self._keep = getattr(self, "_keep", {})
        self._keep[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr):
        alloc = getattr(self, "_keep", {}).pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def host_empty(self, shape, dtype):
        return self.drv.pagelocked_empty(shape, dtype)

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream):
        return int(stream.handle)

    def htod(self, ptr, host, stream):
        self.drv.memcpy_htod_async(ptr, host, stream)

    def dtoh(self, host, ptr, stream):
        self.drv.memcpy_dtoh_async(host, ptr, stream)

    def sync(self, stream):
        stream.synchronize()

    def event(self):
        return self.drv.Event()

    def record(self, event, stream):
        event.record(stream)

    def elapsed_ms(self, start, end):
        return float(end.time_since(start))

    def mem_info(self):
        free, total = self.drv.mem_get_info()
        return int(free), int(total)

    def device_name(self):
        return self.drv.Context.get_device().name()


def cuda_backend():
    """The first CUDA binding importable: cuda-python, else pycuda (both stated in results)."""
    errors = []
    for modname in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            import importlib
            module = importlib.import_module(modname)
            return _CudaRuntime(module, _dist_version("cuda-python", module))
        except ImportError as exc:
            errors.append("%s: %s" % (modname, exc))
    try:
        import pycuda
        import pycuda.autoinit  # noqa: F401 - creates the CUDA context
        import pycuda.driver as drv
        return _PyCuda(drv, getattr(pycuda, "VERSION_TEXT", None) or _dist_version("pycuda", pycuda))
    except ImportError as exc:
        errors.append("pycuda: %s" % exc)
    raise TensorRTUnavailable("no CUDA binding for TensorRT's buffers on the board (%s); "
                              "pip install cuda-python (or apt-get install python3-pycuda)"
                              % "; ".join(errors))


def engine_cache_key(release, artifact, trt_version, gpu):
    """The cached engine's identity: release, artifact bytes, TensorRT version, GPU, format."""
    import hashlib
    parts = [str(release), artifact.get("key"), artifact.get("sha256") or artifact.get("file"),
             artifact.get("precision"), str(trt_version), str(gpu), str(ENGINE_FORMAT)]
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:32]


def is_qdq_model(path, artifact):
    """An int8 ONNX TensorRT can build: QDQ (static) quantization, not dynamic (MatMulInteger)."""
    mode = (artifact.get("quantization") or {}).get("mode")
    if mode:
        return mode == "static"
    with open(path, "rb") as fh:
        blob = fh.read()
    return b"DequantizeLinear" in blob and b"DynamicQuantizeLinear" not in blob


def unsupported_op(message):
    """``op X`` from TensorRT's ONNX parser error (``No importer registered for op: X``)."""
    import re
    m = re.search(r"(?:for op|op type|Op type|importer registered for op)[:\s]+['\"]?(\w+)",
                  message)
    return m.group(1) if m else None


def layer_precisions(trt, engine):
    """Layer count per output data type, from the engine inspector (TensorRT >= 8.2)."""
    try:
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # noqa: BLE001 - informational; the timing stands without it
        return {"available": False, "reason": "%s: %s" % (type(exc).__name__, exc)}
    counts = {}
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):
            counts["unknown"] = counts.get("unknown", 0) + 1
            continue
        text = " ".join(str(o.get("Format/Datatype", "")) for o in layer.get("Outputs", []))
        kind = next((k for k, words in (("int8", ("Int8", "INT8")), ("fp16", ("FP16", "Half")),
                                         ("fp32", ("FP32", "Float"))) if any(w in text for w in words)),
                    "other")
        counts[kind] = counts.get(kind, 0) + 1
    return {"available": True, "layers": sum(counts.values()), "by_precision": counts}


def build_engine(trt, path, precision, qdq, batch_shapes, logger):
    """Serialized engine bytes and what was chosen; :class:`EngineBuildError` when it fails."""
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if major < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(path, "rb") as fh:
        parsed = parser.parse(fh.read())
    if not parsed:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["no detail"]
        raise EngineBuildError("TensorRT %s cannot parse the model: %s"
                               % (trt.__version__, errors[0].strip().splitlines()[-1]))
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    else:  # TensorRT < 8.4
        config.max_workspace_size = 1 << 30
    if hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    chosen, notes = [], []
    if precision in ("fp16", "int8"):
        if builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            chosen.append("FP16")
        else:
            notes.append("this GPU has no fast fp16; fp16 layers were built in fp32")
    if precision == "int8":
        if not qdq:
            raise EngineBuildError("the int8 artifact is not QDQ (dynamic quantization?); TensorRT "
                                   "builds int8 only from QuantizeLinear/DequantizeLinear models: "
                                   "use quantization mode: static")
        config.set_flag(trt.BuilderFlag.INT8)
        chosen.append("INT8")
        if not builder.platform_has_fast_int8:
            notes.append("this GPU has no fast int8; expect no speed-up over fp16")
    dynamic = [network.get_input(i) for i in range(network.num_inputs)
               if any(d < 0 for d in tuple(network.get_input(i).shape))]
    if dynamic:
        prof = builder.create_optimization_profile()
        for tensor in dynamic:
            shape = batch_shapes.get(tensor.name)
            if shape is None:
                raise EngineBuildError("input %r has dynamic dimensions and no sample to fix them"
                                       % tensor.name)
            prof.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(prof)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_ms = (time.perf_counter() - started) * 1000.0
    if serialized is None:
        raise EngineBuildError("TensorRT %s failed to build the engine (its log is on stderr)"
                               % trt.__version__)
    return bytes(serialized), {"flags": chosen or ["FP32"], "notes": notes,
                               "build_ms": round(build_ms, 1)}


class TensorRTRunner(object):
    """A TensorRT engine of an ONNX artifact: built once per (release, artifact, TensorRT, GPU)
    and cached on the board; each call copies inputs in, enqueues, copies outputs out and
    synchronises the stream, recording GPU compute and copy times with CUDA events."""

    runtime = "tensorrt"

    @staticmethod
    def import_runtime():
        return import_tensorrt()

    def __init__(self, path, threads, providers, batch=1, artifact=None, release=None,
                 cache_dir=None, input_names=None, samples=None):
        trt = self.trt = import_tensorrt()
        self.cuda = cuda_backend()
        self.version, self.gpu = trt.__version__, self.cuda.device_name()
        self.providers = ["TensorRT"]
        self.batch, self.batch_note = batch, None
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.artifact, self.input_names = artifact or {}, list(input_names or [])
        free_before, total = self.cuda.mem_info()
        engine_bytes, self.engine_info = self._engine(path, release, cache_dir, samples or {})
        self.trt_runtime = trt.Runtime(self.logger)  # kept alive as long as its engine
        self.engine = self.trt_runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise EngineBuildError("TensorRT %s could not deserialize the engine" % self.version)
        self.context = self.engine.create_execution_context()
        self.tensor_api = hasattr(self.engine, "num_io_tensors")
        self.stream = self.cuda.stream()
        self._bind(samples or {})
        self.output_names = list(self.outputs)  # engine I/O keeps the ONNX tensor names
        self.output_quant = [None] * len(self.outputs)  # outputs come back as float
        fixed = self.host[self.inputs[0]].shape[:1] if self.inputs else ()
        if batch > 1 and fixed and fixed[0] != batch:
            self.batch, self.batch_note = fixed[0], "engine input has a fixed batch of %d" % fixed[0]
        self.memory = {"engine_bytes": len(engine_bytes),
                       "activations_bytes": self._device_memory(),
                       "io_bytes": sum(b.nbytes for b in self.host.values()),
                       "cuda_used_mb": round((free_before - self.cuda.mem_info()[0]) / 2.0 ** 20, 2),
                       "cuda_total_mb": round(total / 2.0 ** 20, 1)}
        self.events = [self.cuda.event() for _ in range(4)]
        self.timings = {"gpu_compute_ms": [], "h2d_ms": [], "d2h_ms": []}

    # -- engine: cached on the board ----------------------------------------------------------
    def _engine(self, path, release, cache_dir, samples):
        key = engine_cache_key(os.path.basename(str(release or "")), self.artifact, self.version,
                               self.gpu)
        cache = os.path.join(cache_dir, key + ".engine") if cache_dir else None
        meta_path = cache[:-len(".engine")] + ".json" if cache else None
        if cache and os.path.exists(cache) and os.path.exists(meta_path):
            with open(cache, "rb") as fh, open(meta_path) as mh:
                return fh.read(), dict(json.load(mh), cached=True, key=key, path=cache)
        precision = self.artifact.get("precision", "fp32")
        qdq = precision == "int8" and is_qdq_model(path, self.artifact)
        shapes = dict((name, tuple(x.shape)) for name, x in samples.items())
        blob, info = build_engine(self.trt, path, precision, qdq, shapes, self.logger)
        info.update({"tensorrt": self.version, "gpu": self.gpu, "precision": precision,
                     "size_bytes": len(blob)})
        if cache:
            os.makedirs(cache_dir, exist_ok=True)
            _atomic_write(cache, blob, "wb")
            _atomic_write(meta_path, json.dumps(info), "w")
        return blob, dict(info, cached=False, key=key, path=cache)

    def _device_memory(self):
        for name in ("device_memory_size_v2", "device_memory_size"):
            value = getattr(self.engine, name, None)
            if isinstance(value, int):
                return value
        return None

    # -- buffers ----------------------------------------------------------------------------
    def _io(self):
        """[(name, is_input, index)] in the engine's order, for either API."""
        trt, eng = self.trt, self.engine
        if self.tensor_api:
            return [(eng.get_tensor_name(i),
                     eng.get_tensor_mode(eng.get_tensor_name(i)) == trt.TensorIOMode.INPUT, i)
                    for i in range(eng.num_io_tensors)]
        return [(eng.get_binding_name(i), eng.binding_is_input(i), i)
                for i in range(eng.num_bindings)]

    def _bind(self, samples):
        trt, eng, ctx = self.trt, self.engine, self.context
        self.inputs, self.outputs, self.host, self.device, self.bindings = [], [], {}, {}, []
        for name, is_input, i in self._io():  # dynamic input shapes first, then the buffers
            dims = tuple(eng.get_tensor_shape(name) if self.tensor_api else eng.get_binding_shape(i))
            if is_input and name in samples and -1 in dims:
                shape = tuple(samples[name].shape)
                if self.tensor_api:
                    ctx.set_input_shape(name, shape)
                else:
                    ctx.set_binding_shape(i, shape)
            (self.inputs if is_input else self.outputs).append(name)
        for name, is_input, i in self._io():
            shape = tuple(ctx.get_tensor_shape(name) if self.tensor_api
                          else ctx.get_binding_shape(i))
            dtype = trt.nptype(eng.get_tensor_dtype(name) if self.tensor_api
                               else eng.get_binding_dtype(i))
            self.host[name] = self.cuda.host_empty(shape, dtype)
            self.device[name] = self.cuda.malloc(self.host[name].nbytes)
            if self.tensor_api:
                ctx.set_tensor_address(name, self.device[name])
            self.bindings.append(self.device[name])
        missing = [n for n in self.inputs if n not in self.input_names]
        if self.input_names and missing:
            raise EngineBuildError("engine inputs %s are not the artifact's (%s)"
                                   % (missing, self.input_names))

    def prepare(self, row):
        import numpy as np
        names = self.input_names or self.inputs
        fed = dict(zip(names, row))
        return [np.ascontiguousarray(fed[n], dtype=self.host[n].dtype) for n in self.inputs]

    def __call__(self, feed):
        cuda, stream, ev = self.cuda, self.stream, self.events
        cuda.record(ev[0], stream)
        for name, x in zip(self.inputs, feed):
            host = self.host[name]
            host[...] = x
            cuda.htod(self.device[name], host, stream)
        cuda.record(ev[1], stream)
        if self.tensor_api:
            self.context.execute_async_v3(cuda.stream_handle(stream))
        elif hasattr(self.context, "execute_async_v2"):
            self.context.execute_async_v2(self.bindings, cuda.stream_handle(stream))
        else:
            self.context.execute_v2(self.bindings)
        cuda.record(ev[2], stream)
        for name in self.outputs:
            cuda.dtoh(self.host[name], self.device[name], stream)
        cuda.record(ev[3], stream)
        cuda.sync(stream)
        t = self.timings
        t["h2d_ms"].append(cuda.elapsed_ms(ev[0], ev[1]))
        t["gpu_compute_ms"].append(cuda.elapsed_ms(ev[1], ev[2]))
        t["d2h_ms"].append(cuda.elapsed_ms(ev[2], ev[3]))
        return [self.host[name] for name in self.outputs]

    def report(self, measured_runs):
        """What the result carries besides host latency: GPU compute and copies (the last
        *measured_runs* calls, like trtexec's summary), the engine, memory, precisions."""
        timing = dict((k, stats(v[-measured_runs:]) if measured_runs and v else None)
                      for k, v in self.timings.items())
        engine = dict((k, self.engine_info.get(k)) for k in
                      ("cached", "key", "path", "build_ms", "size_bytes", "flags", "notes"))
        return {"tensorrt": dict(timing, version=self.version, gpu=self.gpu, cuda=self.cuda.name,
                                 api="tensor (execute_async_v3)" if self.tensor_api
                                 else "bindings (execute_async_v2)",
                                 engine=engine, device_memory=self.memory,
                                 layer_precisions=layer_precisions(self.trt, self.engine),
                                 timing_basis="host latency = copy in + enqueue + copy out + "
                                              "stream sync (perf_counter); GPU compute = CUDA "
                                              "events around the enqueue")}

    def op_profile(self, feeds, runs, top):
        return {"available": False, "source": "tensorrt", "top": [], "fallback_to_cpu": [],
                "reason": "per-layer timing: run trtexec --dumpProfile (profiling.trtexec)"}


def _atomic_write(path, data, mode):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, mode) as fh:
        fh.write(data)
    os.rename(tmp, path)


# -- which runner runs an artifact, and where it really ran ---------------------------------------
class _Bound(object):
    """A runner class with extra constructor arguments bound and a fallback when it cannot be
    built (keeps ``_load``'s ``cls.import_runtime()`` / ``cls(path, threads, providers, batch)``)."""

    def __init__(self, cls, selection, extra=None, fallback=None):
        self.cls, self.selection, self.extra, self.fallback = cls, selection, extra or {}, fallback
        self.runtime = cls.runtime

    def import_runtime(self):
        return self.cls.import_runtime()

    def __call__(self, path, threads, providers, batch=1):
        try:
            runner = self.cls(path, threads, providers, batch, **self.extra)
        except (EngineBuildError, TensorRTUnavailable) as exc:
            if self.fallback is None:
                raise
            log.warning("%s; running it on onnxruntime instead", exc)
            runner = self.fallback(path, threads, providers, batch)
            self.selection = dict(self.selection, fallback=str(exc),
                                  unsupported_op=unsupported_op(str(exc)))
        runner.selection = self.selection
        return runner


def runner_class(release, artifact, args, samples):
    """The runner for *artifact*: TensorRT for ``--tensorrt`` keys (onnxruntime when TensorRT is
    missing or cannot build it), and for other ONNX artifacts onnxruntime with the requested
    providers, or TensorRT when onnxruntime has none of the requested accelerators."""
    fmt = artifact.get("format")
    cls = RUNNERS.get(fmt)
    if cls is None:
        raise ValueError("unknown artifact format %r" % fmt)
    accel = [p for p in args.providers if p != "CPUExecutionProvider"]
    wants_trt = artifact.get("key") in args.tensorrt
    if fmt != "onnx" or not (wants_trt or accel):
        return cls
    selection = {"requested": "TensorRT" if wants_trt else accel}
    if not wants_trt:
        have = _ort_providers()
        if set(accel) & set(have):
            return _Bound(cls, selection)
        selection["note"] = ("onnxruntime offers %s, none of %s" % (", ".join(have) or "nothing",
                                                                     ", ".join(accel)))
    try:
        import_tensorrt()
    except TensorRTUnavailable as exc:
        return _Bound(OnnxRunner, dict(selection, fallback=str(exc)))
    specs = artifact.get("inputs") or [{}]
    first = prepare_feeds(samples, specs, limit=1, batch=args.batch)[0]
    names = [s.get("name") for s in specs]
    extra = {"artifact": artifact, "release": os.path.realpath(release),
             "cache_dir": args.engine_cache or _engine_dir(release), "input_names": names,
             "samples": dict(zip(names, first))}
    if not wants_trt:
        selection["note"] += "; ran it with TensorRT instead"
    return _Bound(TensorRTRunner, selection, extra, fallback=OnnxRunner)


def _ort_providers():
    try:
        return list(OnnxRunner.import_runtime().get_available_providers())
    except ImportError:
        return []


def _engine_dir(release):
    """``<board root>/engines`` (releases live in ``<board root>/releases/<id>``)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(release))), "engines")


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def where_it_ran(runner, args, op_profile):
    """``{"requested", "executed_by", "device", "ok", "policy", "reason"}`` for one result."""
    selection = getattr(runner, "selection", None) or {}
    requested = selection.get("requested")
    reasons = [r for r in (selection.get("fallback"),) if r]
    if runner.runtime == "tensorrt":
        device = "GPU"
        executed = "TensorRT %s on %s (GPU)" % (runner.version, runner.gpu)
    elif runner.runtime == "onnxruntime":
        used = list(runner.providers or [])
        gpu = [p for p in used if p != "CPUExecutionProvider"]
        cpu_ops = [n.get("op") for n in ((op_profile or {}).get("fallback_to_cpu") or [])]
        device = ("GPU+CPU" if cpu_ops else "GPU") if gpu else "CPU"
        executed = "onnxruntime %s %s (%s)" % (runner.version, "+".join(used), device)
        if requested and not gpu:
            have = _ort_providers()
            cpu_build = not [p for p in have if p in GPU_PROVIDERS]
            reasons.append("onnxruntime %s offers only %s (a CPU build)"
                           % (runner.version, ", ".join(have)) if cpu_build
                           else "onnxruntime %s did not use %s" % (
                               runner.version, ", ".join(requested) if isinstance(requested, list)
                               else requested))
        if gpu and cpu_ops:
            reasons.append("op %s not supported by %s, ran on CPU"
                           % (", ".join(sorted(set(o for o in cpu_ops if o))), gpu[0]))
    else:
        device, executed = "CPU", "%s %s (CPU)" % (runner.runtime, runner.version)
    if selection.get("unsupported_op"):
        reasons.insert(0, "op %s not supported by TensorRT, ran on CPU"
                       % selection["unsupported_op"])
    return {"requested": requested, "executed_by": executed, "device": device,
            "ok": not requested or device == "GPU", "policy": args.accelerator,
            "reason": "; ".join(reasons) or None, "note": selection.get("note")}


# -- statistics --------------------------------------------------------------------------------
def stats(times_ms):
    """min/mean/std/p50/p90/p95/p99/max (numpy's linear-interpolated percentiles)."""
    import numpy as np
    a = np.asarray(times_ms, dtype=np.float64)
    p = np.percentile(a, [50, 90, 95, 99])
    values = [a.min(), a.mean(), a.std(), p[0], p[1], p[2], p[3], a.max()]
    names = ["min", "mean", "std", "p50", "p90", "p95", "p99", "max"]
    return dict((n, round(float(v), 6)) for n, v in zip(names, values))


def histogram(times_ms, bins=40):
    """A histogram of all samples (so the host can plot the distribution of every run)."""
    import numpy as np
    counts, edges = np.histogram(np.asarray(times_ms, dtype=np.float64), bins=bins)
    return {"edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in counts]}


def downsample(times_ms, limit):
    """At most *limit* samples, evenly spaced over the run (order kept), rounded to 0.1 µs."""
    step = max(1, -(-len(times_ms) // max(1, limit)))
    return [round(t, 4) for t in times_ms[::step]]


def is_stable(p50s, windows, tol):
    """The last *windows* window medians agree within *tol* (relative spread)."""
    if len(p50s) < windows:
        return False
    last = p50s[-windows:]
    return (max(last) - min(last)) <= tol * min(last)


# -- measuring one artifact (child process) -----------------------------------------------------
def _loop(runner, feeds, count, seconds, cap):
    """Run at least *count* times and at least *seconds* long (at most *cap* runs)."""
    times = []
    perf = time.perf_counter
    n = len(feeds)
    start = perf()
    i = 0
    while i < cap and (i < count or (seconds and perf() - start < seconds)):
        t0 = perf()
        runner(feeds[i % n])
        times.append((perf() - t0) * 1000.0)
        i += 1
    return times, perf() - start


def _until_stable(runner, feeds, args):
    """Windows of --runs inferences until the last --stable-windows medians agree."""
    import numpy as np
    p50s, windows, started = [], [], time.perf_counter()
    budget_s = args.timeout * 0.5
    while True:
        times, _ = _loop(runner, feeds, args.runs, 0, args.runs)
        windows.append(times)
        p50s.append(round(float(np.median(times)), 6))
        stable = is_stable(p50s, args.stable_windows, args.stable_tol)
        spent = time.perf_counter() - started
        if stable or sum(map(len, windows)) >= args.max_runs or spent > budget_s:
            break
    kept = [t for w in windows[-args.stable_windows:] for t in w]
    info = {"stable": stable, "window_runs": args.runs, "window_p50_ms": p50s,
            "tolerance": args.stable_tol, "windows_needed": args.stable_windows,
            "total_runs": sum(map(len, windows))}
    return kept, time.perf_counter() - started, info


def _pin(args):
    """Pin this process to --pin CPUs ('auto' = the first --threads allowed CPUs)."""
    if not args.pin or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpus = allowed[:args.threads] if args.pin == "auto" else [int(c) for c in args.pin.split(",")]
    os.sched_setaffinity(0, cpus)
    return sorted(os.sched_getaffinity(0))


def empty_result(key, error, threads=None):
    """The result shape for an artifact that could not be measured."""
    return {"key": key, "ok": False, "error": error, "runtime": None, "runtime_version": None,
            "providers": None, "threads": threads, "load_ms": None, "first_inference_ms": None,
            "warmup": 0, "runs": 0, "latency_ms": None, "throughput_ips": None,
            "rss_mb": {"before_load": None, "after_load": None, "peak": None}}


def _load(release, artifact, args):
    import numpy as np
    samples = np.load(os.path.join(release, "samples.npz"))
    cls = runner_class(release, artifact, args, samples)
    start = time.perf_counter()
    cls.import_runtime()
    import_ms = (time.perf_counter() - start) * 1000.0
    rss_before = _rss_mb()
    specs = artifact.get("inputs") or [{}]
    batch, note = feed_batch(specs, args.batch)
    start = time.perf_counter()
    runner = cls(os.path.join(release, artifact["file"]), args.threads, args.providers, batch)
    load_ms = (time.perf_counter() - start) * 1000.0
    runner.batch_note = runner.batch_note or note
    feeds = [runner.prepare(r) for r in prepare_feeds(samples, specs, batch=runner.batch)]
    raw = prepare_feeds(samples, specs, limit=8, batch=runner.batch)
    return runner, feeds, raw, {"import_ms": round(import_ms, 3), "load_ms": round(load_ms, 3),
                                "rss_before": rss_before, "rss_after": _rss_mb()}


def measure(release, artifact, args):
    """Load one artifact, warm it up, time it, watch the board; return its result dict."""
    pinned = _pin(args)
    runner, feeds, raw_feeds, loaded = _load(release, artifact, args)
    start = time.perf_counter()
    first = runner(feeds[0])
    first_ms = (time.perf_counter() - start) * 1000.0
    outputs = describe_outputs(first, runner, artifact.get("outputs"))
    before = thermal_snapshot()
    sampler = Sampler(args.sample_interval).start()
    tegra = Tegrastats(args.tegrastats_ms, sampler.t0) if shutil.which("tegrastats") else None
    warm, warm_s = _loop(runner, feeds, args.warmup, args.warmup_s, 10 ** 9)
    t_measure = time.perf_counter() - sampler.t0
    stability = None
    if args.until_stable:
        times, wall_s, stability = _until_stable(runner, feeds, args)
    else:
        times, wall_s = _loop(runner, feeds, args.runs, args.duration_s, args.max_runs)
    peak = _rss_mb("VmHWM")  # before the op profile's second session
    tegra_out = tegra.stop() if tegra else None
    timeline = sampler.stop()
    result = empty_result(artifact["key"], None, args.threads)
    lat = stats(times)
    result.update({
        "ok": True, "runtime": runner.runtime, "runtime_version": runner.version,
        "providers": runner.providers, "import_ms": loaded["import_ms"],
        "load_ms": loaded["load_ms"], "first_inference_ms": round(first_ms, 3),
        "warmup": len(warm), "warmup_s": round(warm_s, 4), "runs": len(times),
        "measured_s": round(wall_s, 4), "batch": runner.batch, "batch_requested": args.batch,
        "batch_note": runner.batch_note, "pinned_cpus": pinned,
        "latency_ms": lat,
        "latency_per_sample_ms": {"p50": round(lat["p50"] / runner.batch, 6),
                                  "mean": round(lat["mean"] / runner.batch, 6)},
        "throughput_ips": round(1000.0 * len(times) * runner.batch / sum(times), 2),
        "samples_ms": downsample(times, args.samples), "samples_total": len(times),
        "histogram": histogram(times), "stability": stability,
        "rss_mb": {"before_load": loaded["rss_before"], "after_load": loaded["rss_after"],
                   "peak": peak},
        "thermal": {"before": before, "after": thermal_snapshot(), "timeline": timeline,
                    "measure_started_s": round(t_measure, 3),
                    "measure_ended_s": round(t_measure + wall_s, 3)},
        "tegrastats": tegra_out, "outputs": outputs,
    })
    result["op_profile"] = _op_profile(runner, raw_feeds, args)
    result.update(runner.report(len(times)) if hasattr(runner, "report") else {})
    result["accelerator"] = where_it_ran(runner, args, result["op_profile"])
    return result


def _op_profile(runner, raw_feeds, args):
    if args.op_top <= 0:
        return None
    try:
        return runner.op_profile(raw_feeds, max(10, min(50, args.runs // 4)), args.op_top)
    except Exception as exc:  # noqa: BLE001 - the timing stands without the op profile
        return {"available": False, "reason": "%s: %s" % (type(exc).__name__, exc), "top": []}


def run_trtexec(release, artifact, args, engine=None):
    """``trtexec`` on an ONNX artifact as a second opinion; raw tail for the host to parse.
    With the *engine* the TensorRT runner built (and cached), trtexec times that same engine
    (``--loadEngine``) instead of building its own."""
    if not args.trtexec:
        return None
    exe = shutil.which("trtexec") or ("/usr/src/tensorrt/bin/trtexec"
                                      if os.path.exists("/usr/src/tensorrt/bin/trtexec") else None)
    if artifact.get("format") != "onnx":
        return {"ran": False, "reason": "trtexec takes ONNX only"}
    if exe is None:
        return {"ran": False, "reason": "trtexec not found on this board"}
    argv = [exe, "--onnx=" + os.path.join(release, artifact["file"]), "--duration=3"]
    if engine and os.path.exists(engine):
        argv = [exe, "--loadEngine=" + engine, "--duration=3"]
    elif artifact.get("precision") in ("fp16", "int8"):
        argv.append("--" + artifact["precision"])
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=min(600.0, args.timeout))
    except subprocess.TimeoutExpired:
        return {"ran": False, "reason": "trtexec did not finish within %g s" % args.timeout}
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    return {"ran": True, "exit": proc.returncode, "argv": argv[1:], "output_tail": lines[-40:]}


def _child_argv(release, artifact, args):
    argv = [sys.executable, os.path.abspath(__file__), "--release", release, "--only",
            artifact["key"], "--child"]
    for name in ("warmup", "warmup_s", "runs", "duration_s", "max_runs", "threads", "batch",
                 "stable_tol", "stable_windows", "op_top", "samples", "sample_interval",
                 "tegrastats_ms", "timeout"):
        argv += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    argv += ["--providers", ",".join(args.providers), "--pin", args.pin or "",
             "--tensorrt", ",".join(args.tensorrt), "--engine-cache", args.engine_cache or "",
             "--accelerator", args.accelerator]
    return argv + (["--until-stable"] if args.until_stable else [])


def run_child(release, artifact, args):
    """Run ``--only KEY --child`` in a fresh process; never raises, never hangs past --timeout."""
    try:
        proc = subprocess.run(_child_argv(release, artifact, args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=args.timeout)
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write((exc.stderr or b"").decode("utf-8", "replace"))
        return empty_result(artifact["key"], "timed out after %g s" % args.timeout, args.threads)
    err = proc.stderr.decode("utf-8", "replace")
    sys.stderr.write(err)
    try:
        result = json.loads(proc.stdout.decode("utf-8", "replace"))
    except ValueError:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return empty_result(artifact["key"], "child exited %s: %s" % (proc.returncode, tail),
                            args.threads)
    if result.get("ok"):
        engine = ((result.get("tensorrt") or {}).get("engine") or {}).get("path")
        result["trtexec"] = run_trtexec(release, artifact, args, engine)
    return result


# -- entry point -------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description="Measure the artifacts of an edgeship release.")
    p.add_argument("--release", required=True, help="release directory (has manifest.json)")
    p.add_argument("--only", help="measure only the artifact with this key")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=10, help="warm-up runs (at least)")
    p.add_argument("--warmup-s", type=float, default=0.0, help="warm-up seconds (at least)")
    p.add_argument("--runs", type=int, default=100, help="measured runs (a window if stable)")
    p.add_argument("--duration-s", type=float, default=0.0, help="measure for at least S s")
    p.add_argument("--max-runs", type=int, default=1000000, help="cap on measured runs")
    p.add_argument("--until-stable", action="store_true", help="run windows until p50 settles")
    p.add_argument("--stable-tol", type=float, default=0.02)
    p.add_argument("--stable-windows", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pin", default="", help="CPUs to pin to: 'auto' or '0,1'")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--providers", default="CPUExecutionProvider")
    p.add_argument("--op-top", type=int, default=10, help="slowest ops to report (0: none)")
    p.add_argument("--samples", type=int, default=1000, help="raw latencies returned (cap)")
    p.add_argument("--sample-interval", type=float, default=1.0, help="thermal sampling, s")
    p.add_argument("--tegrastats-ms", type=int, default=500)
    p.add_argument("--trtexec", action="store_true", help="also run trtexec when present")
    p.add_argument("--tensorrt", default="", help="artifact keys to run as TensorRT engines")
    p.add_argument("--engine-cache", default="", help="engine cache (default <root>/engines)")
    p.add_argument("--accelerator", default="none", choices=("required", "preferred", "none"),
                   help="the profile's wish, echoed in each result's accelerator verdict")
    p.add_argument("--sysroot", default="/", help="read /etc/nv_tegra_release under this "
                   "directory (simulated boards)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per artifact")
    args = p.parse_args(argv)
    args.providers = [x for x in args.providers.split(",") if x]
    args.tensorrt = [x for x in args.tensorrt.split(",") if x]
    if (args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.timeout <= 0
            or args.batch < 1 or args.max_runs < 1 or args.stable_windows < 2):
        p.error("--runs, --threads, --batch, --max-runs must be >= 1, --warmup >= 0, "
                "--stable-windows >= 2, --timeout > 0")
    return args


def _claim_stdout():
    """Keep fd 1 for our JSON; whatever runtimes print to stdout goes to stderr instead."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _child(args, artifact, out):
    try:
        result = measure(args.release, artifact, args)
    except Exception as exc:  # noqa: BLE001 - reported as ok: false, never hidden
        log.exception("artifact %s failed", artifact["key"])
        result = empty_result(artifact["key"], "%s: %s" % (type(exc).__name__, exc),
                              args.threads)
    json.dump(result, out)
    out.flush()
    return 0


def main(argv=None):
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="agent: %(message)s")
    args = parse_args(argv)
    out = _claim_stdout()
    try:
        with open(os.path.join(args.release, "manifest.json")) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        log.error("cannot read %s/manifest.json: %s", args.release, exc)
        return 2
    artifacts = [a for a in manifest.get("artifacts", []) if args.only in (None, a.get("key"))]
    if args.only and not artifacts:
        log.error("no artifact %r in the manifest", args.only)
        return 2
    if args.child:
        return _child(args, artifacts[0], out)
    results = []
    for artifact in artifacts:
        log.info("measuring %s (%s)", artifact["key"], artifact.get("file"))
        results.append(run_child(args.release, artifact, args))
    doc = {"schema": SCHEMA, "agent_version": AGENT_VERSION, "release": manifest.get("bundle_id"),
           "device": device_facts(args.sysroot), "results": results}
    json.dump(doc, out)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
