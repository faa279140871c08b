"""PyTorch's intra-op threads, pinned to one for a block of small batch-1 work.

torch defaults to one OpenMP thread per core; on this 2-core host shared with other work, its
threads spin-wait on each other and a batch-1 forward pass slows down by an order of magnitude
(measured at load ~7: EfficientNet-Lite0's reference run on 24 samples 17–34 s with 2 threads,
1.5–1.7 s with 1; the demo CNN on 1000 samples 14–20 s against 0.9–1.1 s). Changing the thread
count between calls recreates the pool, so it is set once around a loop, not per sample.

Nothing is imported: when torch is not loaded yet, the block runs as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Run the block with torch's intra-op thread count at *count* (restored after)."""
    torch = sys.modules.get("torch")
    if torch is None or torch.get_num_threads() == count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
