"""Small ONNX graphs that reproduce what real third-party models did to the conversion routes.

Built with ``onnx.helper`` (a second each, no torch export): names with ``@`` (onnx2tf: "not a
valid scope name"), a MaxPool whose padding onnx2tf fills differently in an int8 call (the fp32
file drifted when fp32 and int8 were converted together), a Mul onnx2tf cannot lay out in NHWC
("Dimensions must be equal"), and an opset-11 conv (per-channel QDQ needs opset 13).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["conv_pool", "nhwc_mismatch"]


def conv_pool(path: Path, *, opset: int = 17, suffix: str = "") -> Path:
    """x[1,3,16,16] → Conv → MaxPool(3, stride 2, pads 1) → flatten → MatMul → logits[1,10].

    The conv output is negative in places (no ReLU), so padding the pool with 0 instead of
    -inf changes the result. *suffix* is appended to every node and intermediate tensor name
    (``"@0"`` reproduces exporters that name nodes ``Softmax@0``).
    """
    import onnx
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w"),
             nh.from_array(rng.normal(0, 0.5, (8,)).astype(np.float32), "b"),
             nh.from_array(rng.normal(0, 0.01, (8 * 8 * 8, 10)).astype(np.float32), "fc"),
             nh.from_array(np.array([1, 8 * 8 * 8], np.int64), "shape")]
    s = suffix
    nodes = [h.make_node("Conv", ["x", "w", "b"], [f"c{s}"], name=f"conv{s}", pads=[1, 1, 1, 1]),
             h.make_node("MaxPool", [f"c{s}"], [f"p{s}"], name=f"pool{s}", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
             h.make_node("Reshape", [f"p{s}", "shape"], [f"f{s}"], name=f"flat{s}"),
             h.make_node("MatMul", [f"f{s}", "fc"], [f"m{s}"], name=f"head{s}"),
             h.make_node("Softmax", [f"m{s}"], ["probs"], name=f"Softmax{s}", axis=-1)]
    graph = h.make_graph(nodes, "conv_pool", [h.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [h.make_tensor_value_info(
            "probs", TensorProto.FLOAT, [1, 10])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def nhwc_mismatch(path: Path) -> Path:
    """x[1,4,40,120] * z[1,40,120] (valid ONNX broadcasting); onnx2tf transposes both inputs to
    channels-last and then cannot multiply them (``Dimensions must be equal, but are 40 and
    120``) at the node named ``p2o.Mul.178``."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    node = h.make_node("Mul", ["x", "z"], ["y"], name="p2o.Mul.178")
    graph = h.make_graph([node], "nhwc_mismatch", [
        h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 40, 120]),
        h.make_tensor_value_info("z", TensorProto.FLOAT, [1, 40, 120])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 40, 120])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
