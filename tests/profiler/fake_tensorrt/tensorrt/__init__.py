"""STAND-IN for NVIDIA TensorRT's Python API (tests only; see ../README.md).

Shaped like the documented API of TensorRT 8.x (bindings, ``execute_async_v2``) or 10.x
(``num_io_tensors``, ``set_tensor_address``, ``execute_async_v3``), chosen by
``FAKE_TRT_VERSION``. The "engine" runs the ONNX model with onnxruntime on the CPU, reading and
writing the stand-in ``cuda.cudart`` "device" memory. No figure it yields is a measurement.
"""

import base64
import ctypes
import enum
import json
import os

import numpy as np

__version__ = os.environ.get("FAKE_TRT_VERSION", "10.3.0")
_MAJOR = int(__version__.split(".")[0])
STAND_IN = True


class Logger(object):
    WARNING, INFO, ERROR = 2, 3, 1

    def __init__(self, severity=2):
        self.severity = severity


class DataType(enum.Enum):
    FLOAT, HALF, INT8, INT32, INT64, BOOL = range(6)


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.BOOL: np.bool_}
_ONNX_TYPES = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32,
               7: DataType.INT64, 9: DataType.BOOL}


def _buffer_at(ptr, nbytes):
    """The stand-in "device" memory at *ptr* (a host address from cuda or pycuda stand-ins)."""
    return (ctypes.c_char * nbytes).from_address(ptr)


def nptype(dtype):
    return _NP[dtype]


class BuilderFlag(enum.Enum):
    FP16, INT8 = "FP16", "INT8"


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class ProfilingVerbosity(enum.Enum):
    LAYER_NAMES_ONLY, DETAILED = range(2)


class LayerInformationFormat(enum.Enum):
    ONELINE, JSON = range(2)


class TensorIOMode(enum.Enum):
    NONE, INPUT, OUTPUT = range(3)


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0


class _Tensor(object):
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class _Network(object):
    def __init__(self, flags):
        self.flags, self.model, self.inputs, self.outputs, self.ops = flags, b"", [], [], []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]


class OnnxParser(object):
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]

    def parse(self, blob):
        import onnx
        model = onnx.load_from_string(blob)
        refused = [x for x in os.environ.get("FAKE_TRT_UNSUPPORTED_OPS", "").split(",") if x]
        for i, node in enumerate(model.graph.node):
            if node.op_type in refused:
                self.errors.append("In node %d with name: %s and operator: %s (importOp): "
                                   "UNSUPPORTED_NODE: No importer registered for op: %s"
                                   % (i, node.name, node.op_type, node.op_type))
                return False
        problem = _qdq_problem(model)
        if problem:
            self.errors.append(problem)
            return False
        net = self.network
        net.model, net.ops = blob, [(n.name or n.op_type, n.op_type) for n in model.graph.node]
        init = {t.name for t in model.graph.initializer}
        for vi, bucket in ((model.graph.input, net.inputs), (model.graph.output, net.outputs)):
            for v in vi:
                if v.name in init:
                    continue
                dims = [d.dim_value if d.dim_value > 0 else -1 for d in v.type.tensor_type.shape.dim]
                bucket.append(_Tensor(v.name, dims, _ONNX_TYPES[v.type.tensor_type.elem_type]))
        return True


def _qdq_problem(model):
    """TensorRT's documented Q/DQ rules: no 16-bit Q/DQ, zero points all 0 (symmetric)."""
    from onnx import numpy_helper
    inits = dict((t.name, t) for t in model.graph.initializer)
    for i, node in enumerate(model.graph.node):
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        zp = inits.get(node.input[2])
        if zp is None:
            continue
        arr = numpy_helper.to_array(zp)
        if arr.dtype.name in ("int16", "uint16"):
            return ("In node %d with name: %s and operator: %s: UNSUPPORTED_NODE: TensorRT "
                    "has no %s Q/DQ" % (i, node.name, node.op_type, arr.dtype))
        if arr.any():
            return ("In node %d with name: %s and operator: %s: Assertion failed: "
                    "shiftIsAllZeros(zeroPoint) && \"TRT only supports symmetric quantization. "
                    "The zero point for the QuantizeLinear/DequantizeLinear operator must be all "
                    "zeros.\"" % (i, node.name, node.op_type))
    return None


class _Profile(object):
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, lo, opt, hi):
        self.shapes[name] = tuple(opt)


class _Config(object):
    def __init__(self):
        self.flags, self.profiles, self.pool = set(), [], {}
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY

    def set_flag(self, flag):
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool, size):
        self.pool[pool] = size

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder(object):
    def __init__(self, logger):
        self.platform_has_fast_fp16 = os.environ.get("FAKE_TRT_FAST_FP16", "1") == "1"
        self.platform_has_fast_int8 = os.environ.get("FAKE_TRT_FAST_INT8", "1") == "1"

    def create_network(self, flags=0):
        if _MAJOR < 10 and not flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)):
            raise ValueError("stand-in TensorRT 8: only explicit-batch networks")
        return _Network(flags)

    def create_builder_config(self):
        return _Config()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        log = os.environ.get("FAKE_TRT_BUILD_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write("build %s %s\n" % (__version__, sorted(f.value for f in config.flags)))
        shapes = {}
        for p in config.profiles:
            shapes.update(p.shapes)
        io = [[t.name, list(shapes.get(t.name, t.shape)), t.dtype.name, True]
              for t in network.inputs]
        io += [[t.name, list(t.shape), t.dtype.name, False] for t in network.outputs]
        return json.dumps({"stand_in": True, "version": __version__, "io": io,
                           "flags": sorted(f.value for f in config.flags), "ops": network.ops,
                           "model": base64.b64encode(network.model).decode()}).encode()


class Runtime(object):
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, blob):
        try:
            doc = json.loads(bytes(blob).decode())
        except ValueError:
            return None
        if doc.get("version") != __version__:  # a real engine does not load across versions
            return None
        return _Engine(doc)


class _Inspector(object):
    def __init__(self, engine):
        self.engine = engine

    def get_engine_information(self, fmt):
        flags = self.engine.doc["flags"]
        layers = []
        for name, op in self.engine.doc["ops"]:
            kind = ("Int8" if "INT8" in flags and op in ("Conv", "MatMul", "Gemm") else
                    "FP16" if "FP16" in flags else "FP32")
            layers.append({"Name": name, "LayerType": op,
                           "Outputs": [{"Format/Datatype": "Row major linear %s format" % kind}]})
        return json.dumps({"Layers": layers})


class _Engine(object):
    def __init__(self, doc):
        self.doc = doc
        self.io = [(n, tuple(s), DataType[d], inp) for n, s, d, inp in doc["io"]]
        if _MAJOR >= 10:
            self.num_io_tensors = len(self.io)
            self.device_memory_size_v2 = 4096
        else:
            self.num_bindings = len(self.io)
            self.device_memory_size = 4096

    def _find(self, name):
        return next(i for i, t in enumerate(self.io) if t[0] == name)

    # 10.x tensor API
    def get_tensor_name(self, i):
        return self.io[i][0]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if self.io[self._find(name)][3] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self.io[self._find(name)][2]

    def get_tensor_shape(self, name):
        return self.io[self._find(name)][1]

    # 8.x bindings API
    def get_binding_name(self, i):
        return self.io[i][0]

    def binding_is_input(self, i):
        return self.io[i][3]

    def get_binding_dtype(self, i):
        return self.io[i][2]

    def get_binding_shape(self, i):
        return self.io[i][1]

    def create_execution_context(self):
        return _Context(self)

    def create_engine_inspector(self):
        return _Inspector(self)


class _Context(object):
    def __init__(self, engine):
        import onnxruntime
        self.engine = engine
        self.shapes = dict((n, s) for n, s, _, _ in engine.io)
        self.addresses = {}
        self.session = onnxruntime.InferenceSession(base64.b64decode(engine.doc["model"]),
                                                    providers=["CPUExecutionProvider"])

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self._resolved(name)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        if _MAJOR < 10:
            raise AttributeError("execute_async_v3 does not exist in the stand-in TensorRT 8")
        return self._run(self.addresses)

    def set_binding_shape(self, i, shape):
        self.shapes[self.engine.io[i][0]] = tuple(shape)
        return True

    def get_binding_shape(self, i):
        return self._resolved(self.engine.io[i][0])

    def execute_async_v2(self, bindings, stream_handle):
        if _MAJOR >= 10:
            raise AttributeError("execute_async_v2 was removed in TensorRT 10")
        return self._run(dict((t[0], p) for t, p in zip(self.engine.io, bindings)))

    def _resolved(self, name):
        shape = self.shapes[name]
        if -1 in shape and not self.engine.io[self.engine._find(name)][3]:
            batch = next(s[0] for n, s in self.shapes.items() if -1 not in s)
            shape = tuple(batch if d == -1 else d for d in shape)
        return shape

    def _run(self, addresses):
        feeds = {}
        for name, _, dtype, is_input in self.engine.io:
            if is_input:
                shape = self._resolved(name)
                n = int(np.prod(shape)) * np.dtype(_NP[dtype]).itemsize
                raw = np.frombuffer(_buffer_at(addresses[name], n), dtype=_NP[dtype])
                feeds[name] = raw.reshape(shape).copy()
        outs = self.session.run(None, feeds)
        outputs = [t for t in self.engine.io if not t[3]]
        for (name, _, dtype, _), value in zip(outputs, outs):
            value = np.ascontiguousarray(value, dtype=_NP[dtype])
            view = np.frombuffer(_buffer_at(addresses[name], value.nbytes), dtype=np.uint8)
            view[:] = value.view(np.uint8).reshape(-1)
        return True
