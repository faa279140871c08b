#!/usr/bin/env python3
"""edgeship on-board agent: measure every artifact of a release, print ONE JSON document.

    python edgeship_agent.py --release DIR [--only KEY] [--warmup N] [--runs N] [--threads N]
                             [--providers a,b] [--timeout S]

Self-contained: Python 3.8+, the standard library, numpy and whichever runtime the board has
(onnxruntime; ai_edge_litert, else tflite_runtime, else tensorflow.lite). Each artifact runs in
its own child process (``--only KEY --child``) so its peak RSS is its own and a crash or hang is
reported as ``ok: false`` instead of taking the others down. Logs go to stderr; stdout carries
only the JSON document.
"""

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time

AGENT_VERSION = "0.1.0"
SCHEMA = 1
log = logging.getLogger("edgeship-agent")


# -- device facts ------------------------------------------------------------------------------
def _read(path):
    """Text of *path*, or '' when it cannot be read."""
    try:
        with open(path) as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return ""


def _cpu_model():
    """The CPU model from /proc/cpuinfo ('model name', or the ARM 'Model'/'Hardware' lines)."""
    fields = {}
    for line in _read("/proc/cpuinfo").splitlines():
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


def device_facts():
    """Who is measuring: host, CPU, memory, OS, Python, temperatures (L4T when present)."""
    uname = platform.uname()
    facts = {
        "hostname": socket.gethostname(), "machine": uname.machine, "system": uname.system,
        "release": uname.release, "cpu": _cpu_model(), "cores": os.cpu_count(),
        "ram_mb": _meminfo_mb("MemTotal"), "python": platform.python_version(),
        "os": _os_name(), "temps_c": _temps(),
    }
    l4t = _read("/etc/nv_tegra_release").strip()
    if l4t:
        facts["l4t"] = l4t.splitlines()[0]
    return facts


def _rss_mb(field="VmRSS"):
    """This process's resident memory (or its peak with ``VmHWM``) in MB."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024.0, 2)
    return None


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


def prepare_feeds(samples, specs, limit=32):
    """Per sample index, one list of source-layout arrays (batch 1), transposed as required."""
    import numpy as np
    arrays = [_sample_array(samples, spec) for spec in specs]
    count = min(min(len(a) for a in arrays), limit)
    if count == 0:
        raise ValueError("samples.npz holds no samples")
    feeds = []
    for i in range(count):
        row = []
        for arr, spec in zip(arrays, specs):
            x = np.asarray(arr[i:i + 1])
            if spec.get("transpose"):
                x = np.transpose(x, spec["transpose"])
            row.append(np.ascontiguousarray(x))
        feeds.append(row)
    return feeds


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


class OnnxRunner:
    """An onnxruntime session with the requested threads and (available) providers."""

    runtime = "onnxruntime"

    @staticmethod
    def import_runtime():
        import onnxruntime
        return onnxruntime

    def __init__(self, path, threads, providers):
        ort = self.import_runtime()
        self.version = ort.__version__
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.sess = ort.InferenceSession(path, sess_options=opts, providers=wanted)
        self.providers = self.sess.get_providers()
        self.inputs = self.sess.get_inputs()

    def prepare(self, row):
        import numpy as np
        feed = {}
        for x, meta in zip(row, self.inputs):
            dtype = getattr(np, ONNX_DTYPES.get(meta.type, "float32"))
            feed[meta.name] = x.astype(dtype, copy=False)
        return feed

    def __call__(self, feed):
        return self.sess.run(None, feed)


def _tflite_interpreter_class():
    """The first TFLite interpreter the board has: ai_edge_litert, tflite_runtime, tensorflow."""
    try:
        from ai_edge_litert import interpreter as mod
        import ai_edge_litert
        return mod.Interpreter, "ai_edge_litert", _dist_version("ai-edge-litert", ai_edge_litert)
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as mod
        import tflite_runtime
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


class TFLiteRunner:
    """A TFLite interpreter; integer inputs are quantized with the model's own parameters."""

    @staticmethod
    def import_runtime():
        return _tflite_interpreter_class()

    def __init__(self, path, threads, providers):
        cls, self.runtime, self.version = self.import_runtime()
        self.interp = cls(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.providers = None
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()

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


RUNNERS = {"onnx": OnnxRunner, "tflite": TFLiteRunner}


# -- measuring one artifact (child process) -----------------------------------------------------
def _stats(times_ms):
    import numpy as np
    a = np.asarray(times_ms, dtype=np.float64)
    p = np.percentile(a, [50, 90, 95, 99])
    values = [a.min(), a.mean(), a.std(), p[0], p[1], p[2], p[3], a.max()]
    names = ["min", "mean", "std", "p50", "p90", "p95", "p99", "max"]
    return dict((n, round(float(v), 6)) for n, v in zip(names, values))


def empty_result(key, error, threads=None):
    """The result shape for an artifact that could not be measured."""
    return {"key": key, "ok": False, "error": error, "runtime": None, "runtime_version": None,
            "providers": None, "threads": threads, "load_ms": None, "first_inference_ms": None,
            "warmup": 0, "runs": 0, "latency_ms": None, "throughput_ips": None,
            "rss_mb": {"before_load": None, "after_load": None, "peak": None}}


def measure(release, artifact, args):
    """Load one artifact, run it warmup + runs times, return its result dict."""
    import numpy as np
    samples = np.load(os.path.join(release, "samples.npz"))
    feeds_src = prepare_feeds(samples, artifact.get("inputs") or [{}])
    cls = RUNNERS.get(artifact.get("format"))
    if cls is None:
        raise ValueError("unknown artifact format %r" % artifact.get("format"))
    start = time.perf_counter()
    cls.import_runtime()
    import_ms = (time.perf_counter() - start) * 1000.0
    rss_before = _rss_mb()
    start = time.perf_counter()
    runner = cls(os.path.join(release, artifact["file"]), args.threads, args.providers)
    load_ms = (time.perf_counter() - start) * 1000.0
    rss_after = _rss_mb()
    feeds = [runner.prepare(row) for row in feeds_src]
    start = time.perf_counter()
    runner(feeds[0])
    first_ms = (time.perf_counter() - start) * 1000.0
    for i in range(args.warmup):
        runner(feeds[i % len(feeds)])
    times = []
    for i in range(args.runs):
        start = time.perf_counter()
        runner(feeds[i % len(feeds)])
        times.append((time.perf_counter() - start) * 1000.0)
    result = empty_result(artifact["key"], None, args.threads)
    result.update({
        "ok": True, "runtime": runner.runtime, "runtime_version": runner.version,
        "providers": runner.providers, "import_ms": round(import_ms, 3),
        "load_ms": round(load_ms, 3),
        "first_inference_ms": round(first_ms, 3), "warmup": args.warmup, "runs": args.runs,
        "latency_ms": _stats(times), "throughput_ips": round(1000.0 * len(times) / sum(times), 2),
        "rss_mb": {"before_load": rss_before, "after_load": rss_after, "peak": _rss_mb("VmHWM")},
    })
    return result


def run_child(release, artifact, args):
    """Run ``--only KEY --child`` in a fresh process; never raises, never hangs past --timeout."""
    argv = [sys.executable, os.path.abspath(__file__), "--release", release, "--only",
            artifact["key"], "--child", "--warmup", str(args.warmup), "--runs", str(args.runs),
            "--threads", str(args.threads), "--providers", ",".join(args.providers)]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write((exc.stderr or b"").decode("utf-8", "replace"))
        return empty_result(artifact["key"], "timed out after %g s" % args.timeout, args.threads)
    err = proc.stderr.decode("utf-8", "replace")
    sys.stderr.write(err)
    try:
        return json.loads(proc.stdout.decode("utf-8", "replace"))
    except ValueError:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return empty_result(artifact["key"], "child exited %s: %s" % (proc.returncode, tail),
                            args.threads)


# -- entry point -------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description="Measure the artifacts of an edgeship release.")
    p.add_argument("--release", required=True, help="release directory (has manifest.json)")
    p.add_argument("--only", help="measure only the artifact with this key")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--providers", default="CPUExecutionProvider")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per artifact")
    args = p.parse_args(argv)
    args.providers = [x for x in args.providers.split(",") if x]
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.timeout <= 0:
        p.error("--runs and --threads must be >= 1, --warmup >= 0, --timeout > 0")
    return args


def _claim_stdout():
    """Keep fd 1 for our JSON; whatever runtimes print to stdout goes to stderr instead."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


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
        try:
            result = measure(args.release, artifacts[0], args)
        except Exception as exc:  # noqa: BLE001 - reported as ok: false, never hidden
            log.exception("artifact %s failed", artifacts[0]["key"])
            result = empty_result(artifacts[0]["key"], "%s: %s" % (type(exc).__name__, exc),
                                  args.threads)
        json.dump(result, out)
        out.flush()
        return 0
    results = []
    for artifact in artifacts:
        log.info("measuring %s (%s)", artifact["key"], artifact.get("file"))
        results.append(run_child(args.release, artifact, args))
    doc = {"schema": SCHEMA, "agent_version": AGENT_VERSION, "release": manifest.get("bundle_id"),
           "device": device_facts(), "results": results}
    json.dump(doc, out, indent=1)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
