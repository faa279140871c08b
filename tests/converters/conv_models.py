"""Tiny seeded models for the converters tests (importable as a module:factory source)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiHead", "TinyCNN", "multi_head", "tiny_cnn", "not_a_module", "raises"]


class TinyCNN(nn.Module):
    """1×28×28 → 10 logits; two strided convs and a linear head (~5k parameters)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.head(self.features(x).flatten(1))


class MultiHead(nn.Module):
    """3×20×24 → class logits [1,5], an NCHW map [1,4,10,12] and boxes in pixels [1,4]:
    the outputs onnx2tf reorders (full int8) and makes NHWC (the map)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.map = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.cls = nn.Linear(8, 5)
        self.box = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, map, boxes."""
        f = self.stem(x)
        pooled = f.mean((2, 3))
        return self.cls(pooled), self.map(f), self.box(pooled) * 100.0


def multi_head() -> nn.Module:
    """A seeded MultiHead (a module:factory source)."""
    torch.manual_seed(0)
    return MultiHead().eval()


def tiny_cnn() -> nn.Module:
    """A seeded, untrained TinyCNN (the factory source)."""
    torch.manual_seed(0)
    return TinyCNN()


def not_a_module() -> object:
    """A factory returning the wrong type."""
    return {"weights": 1}


def raises() -> nn.Module:
    """A factory that fails."""
    raise RuntimeError("factory exploded")
