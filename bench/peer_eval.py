"""Run and judge the artifacts of ``bench/peers.py``: one runner per file, same threads, batch 1.

:class:`Runner` feeds one sample in the source layout (NCHW floats, int64 token ids) to an
onnxruntime session or a TFLite interpreter (``ai_edge_litert``, XNNPACK on by default), and
returns the outputs in the source layout: channels-last TFLite outputs are moved back, int8 I/O
is (de)quantized with the file's own scale and zero point. The quality functions compare every
artifact's outputs with fp32's: top-1 accuracy or agreement, mean cosine, and for the detector
the F1 of its boxes against fp32's (IoU ≥ 0.5, same class, after NMS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Runner", "box_agreement", "quality"]

CONF, IOU = 0.25, 0.5
CONFIDENT = 0.5
"""fp32 softmax probability above which a sample counts as one fp32 is confident about."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.ravel().astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


class Runner:
    """One artifact, loaded once: ``feed(i)`` → native input, ``invoke(native)``, ``outputs()``."""

    def __init__(self, path: Path, inputs: dict[str, np.ndarray], threads: int = 1) -> None:
        self.path, self.inputs, self.tflite = path, inputs, path.suffix == ".tflite"
        if self.tflite:
            from ai_edge_litert.interpreter import Interpreter

            self.interp = Interpreter(model_path=str(path), num_threads=threads)
            self.interp.allocate_tensors()
            self._ins = self._match(self.interp.get_input_details())
            self._outs = self.interp.get_output_details()
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._names = [i.name for i in self.sess.get_inputs()]

    def _match(self, details: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        """Each TFLite input paired with the source input of the same name (else same order)."""
        names = list(self.inputs)
        pairs = []
        for i, d in enumerate(details):
            hit = [n for n in names if n in d["name"]]
            pairs.append((d, hit[0] if len(hit) == 1 else names[i]))
        return pairs

    def feed(self, i: int) -> Any:
        """Sample *i* in this runtime's layout and dtype (prepared outside the timed call)."""
        if not self.tflite:
            return {n: self.inputs[n][i:i + 1] for n in self._names}
        out = []
        for d, name in self._ins:
            x = self.inputs[name][i:i + 1]
            if x.ndim == 4 and tuple(d["shape"]) != x.shape:
                x = x.transpose(0, 2, 3, 1)
            scale, zero = d["quantization"]
            if np.issubdtype(d["dtype"], np.integer) and scale:
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max)
            out.append((d["index"], np.ascontiguousarray(x.astype(d["dtype"]))))
        return out

    def invoke(self, native: Any) -> Any:
        """One inference (the timed part)."""
        if not self.tflite:
            return self.sess.run(None, native)
        for index, x in native:
            self.interp.set_tensor(index, x)
        self.interp.invoke()
        return None

    def run(self, i: int, like: list[tuple[int, ...]] | None = None) -> list[np.ndarray]:
        """Outputs for sample *i* as float32, in the source's layout (*like*: fp32's shapes)."""
        got = self.invoke(self.feed(i))
        if not self.tflite:
            return [np.asarray(o, np.float32) for o in got]
        outs = []
        for d in sorted(self._outs, key=lambda d: d["name"]):
            y = self.interp.get_tensor(d["index"]).astype(np.float32)
            scale, zero = d["quantization"]
            if scale:
                y = (y - zero) * scale
            outs.append(y)
        return [_layout(y, like[k] if like and k < len(like) else None) for k, y in enumerate(outs)]


def _layout(y: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """*y* moved back to *shape* when it is its channels-last or transposed form."""
    if shape is None or y.shape == tuple(shape):
        return y
    if y.ndim >= 3:
        back = np.moveaxis(y, -1, 1)
        if back.shape == tuple(shape):
            return back
    return y.reshape(shape) if y.size == int(np.prod(shape)) else y


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den else float(np.array_equal(a, b))


def _boxes(raw: np.ndarray) -> list[tuple[np.ndarray, int, float]]:
    """YOLOv8 head ``[1, 4+C, A]`` → NMS'd ``(xyxy, class, score)`` above :data:`CONF`."""
    head = raw[0]
    scores, cls = head[4:].max(0), head[4:].argmax(0)
    keep = np.argsort(-scores[scores > CONF]) if (scores > CONF).any() else []
    idx = np.flatnonzero(scores > CONF)[keep] if len(keep) else []
    cx, cy, w, h = head[:4]
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    out: list[tuple[np.ndarray, int, float]] = []
    for i in idx:
        if all(c != cls[i] or _iou(b, xyxy[i]) < 0.45 for b, c, _ in out):
            out.append((xyxy[i], int(cls[i]), float(scores[i])))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def box_agreement(ref: list[np.ndarray], got: list[np.ndarray]) -> dict[str, float]:
    """F1 (and matched-box IoU) of *got*'s detections against *ref*'s, over all images."""
    tp = n_ref = n_got = 0
    ious = []
    for r, g in zip(ref, got):
        rb, gb = _boxes(r), _boxes(g)
        n_ref, n_got = n_ref + len(rb), n_got + len(gb)
        used: set[int] = set()
        for box, c, _ in rb:
            best = max(((j, _iou(box, b)) for j, (b, gc, _) in enumerate(gb)
                        if gc == c and j not in used), key=lambda t: t[1], default=(None, 0.0))
            if best[0] is not None and best[1] >= IOU:
                used.add(best[0])
                tp += 1
                ious.append(best[1])
    f1 = 2 * tp / (n_ref + n_got) if n_ref + n_got else 1.0
    return {"box_f1": round(f1, 4), "ref_boxes": n_ref, "boxes": n_got,
            "matched_iou": round(float(np.mean(ious)), 4) if ious else None}


def quality(metric: str, ref: list[list[np.ndarray]], got: list[list[np.ndarray]],
            labels: np.ndarray | None) -> dict[str, Any]:
    """The task figure of one artifact (``quality``) plus its mean cosine to fp32."""
    cos = float(np.mean([_cosine(r[0], g[0]) for r, g in zip(ref, got)]))
    out: dict[str, Any] = {"cosine": round(cos, 5)}
    if metric in ("accuracy", "agreement"):
        top1 = np.array([int(np.argmax(g[0])) for g in got])
        out["quality"] = round(float(np.mean(top1 == labels)), 4)
        if metric == "agreement":  # also on the samples fp32 is confident about (softmax ≥ 0.5)
            sure = np.array([_softmax(r[0]).max() >= CONFIDENT for r in ref])
            out["confident"] = int(sure.sum())
            out["agreement_confident"] = round(float(np.mean((top1 == labels)[sure])), 4) \
                if sure.any() else None
    elif metric == "boxes":
        out.update(box_agreement([r[0] for r in ref], [g[0] for g in got]))
        out["quality"] = out["box_f1"]
    else:
        out["quality"] = out["cosine"]
    return out
