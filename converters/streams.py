"""Stateful models verified as they run: each artifact carries its own recurrent state.

A streaming model (Silero VAD: inputs ``input``, ``state``; outputs ``output``, ``stateN``)
returns the state its next call takes. Evaluation data recorded from a stream holds, for each
chunk after the first of a sequence, the state the *source* left after the chunk before. Fed
that state, an artifact is judged chunk by chunk on the source's history, and its own state
output by a cosine on every chunk — yet what the state is for is the next chunk's outputs, and
int8 cannot follow the source's state where the source's numbers span orders of magnitude
(silence against speech) without changing a single decision.

:func:`find_carries` pairs each state input with the output that returns it (by name —
``state``/``stateN``, ``h0``/``hn``, ``x_in``/``x_out`` … — and per-sample size) and marks the
samples that continue a sequence: their state input is the source's state output on the
sample before (not all zeros). When the data has such samples, every model run for
verification — the source's reference, each artifact — feeds its *own* state output of the
sample before to those samples (:func:`carried_feed`), and the state output is judged by what
it does: the outputs of the chunks that follow (kind ``state``; an fp32 artifact's state is
still held to the fp32 tolerance). Data without continuing samples is judged as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Carry", "carried_feed", "find_carries", "pairs"]

_SUFFIXES = ("n", "_n", "out", "_out", "new", "_new", "next", "_next")
"""What an output adds to its state input's name (case-insensitive): ``stateN``, ``h_out``."""


@dataclass(frozen=True)
class Carry:
    """Source output ``output`` is the next call's input ``input``; ``continues[i]``: sample
    *i* takes the state sample *i - 1* returned."""

    input: str
    output: int
    continues: tuple[bool, ...]

    def to_dict(self, names: list[str]) -> dict[str, object]:
        """The manifest form."""
        return {"input": self.input, "output": names[self.output],
                "continued_samples": int(sum(self.continues))}


def pairs(input_name: str, output_name: str) -> bool:
    """Whether *output_name* names the state that input *input_name* takes next."""
    i, o = input_name.lower(), output_name.lower()
    if o in (i + s for s in _SUFFIXES) or o in ("new_" + i, "next_" + i):
        return True
    if i.endswith("0") and o == i[:-1] + "n":  # h0 → hn, c0 → cn
        return True
    return (i.endswith("_in") and o == i[:-3] + "_out") or (  # state_in → state_out
        i.startswith("in_") and o == "out_" + i[3:])


def find_carries(inputs: dict[str, np.ndarray], outputs: list[np.ndarray],
                 names: list[str]) -> tuple[Carry, ...]:
    """The state inputs of *inputs* (stacked samples) that *outputs* (the source's, stacked, in
    the order of *names*) return, with the samples that continue a sequence; empty when no
    sample does."""
    carries = []
    for name, data in inputs.items():
        n = len(data)
        for j, out in enumerate(outputs):
            if not pairs(name, names[j]) or len(out) != n or out[0].size != data[0].size:
                continue
            flat_in = data.reshape(n, -1).astype(np.float64)
            flat_out = out.reshape(n, -1).astype(np.float64)
            continues = [False] + [bool(np.any(flat_in[i]) and np.allclose(
                flat_in[i], flat_out[i - 1], rtol=1e-4, atol=1e-5)) for i in range(1, n)]
            if any(continues):
                carries.append(Carry(name, j, tuple(continues)))
            break
    return tuple(carries)


def carried_feed(feed: dict[str, np.ndarray], i: int, carries: tuple[Carry, ...],
                 previous: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    """*feed* (sample *i*'s) with each continued state replaced by the run's own state output
    of sample *i - 1* (*previous*), in the input's shape and dtype."""
    if not carries or previous is None:
        return feed
    feed = dict(feed)
    for c in carries:
        if i < len(c.continues) and c.continues[i]:
            want = feed[c.input]
            feed[c.input] = np.asarray(previous[c.output]).reshape(want.shape).astype(want.dtype)
    return feed
