"""The VAD's speech: eSpeak NG from the zoo cache speaks and Silero hears it (skipped unfetched)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.zoo_corpus import by_name
from bench.zoo_models import site_dir
from bench.zoo_speech import CHUNK, CONTEXT, RATE, VOICES, library_files, speak, vad_samples

SITE = site_dir()
try:
    library_files(SITE)
    HAVE_ESPEAK = True
except FileNotFoundError:
    HAVE_ESPEAK = False
needs_espeak = pytest.mark.skipif(
    not HAVE_ESPEAK, reason=f"eSpeak NG not in the zoo cache ({SITE}); run bench/zoo_fetch.py")
MODEL = SITE / by_name("silero-vad").member
needs_model = pytest.mark.skipif(
    not MODEL.is_file(), reason=f"{MODEL} not fetched; run bench/zoo_fetch.py")


@needs_espeak
def test_a_sentence_is_spoken_at_16_khz_by_every_voice() -> None:
    for voice in VOICES:
        wav = speak(SITE, "Simple is better than complex.", voice)
        assert wav.dtype == np.float32 and wav.ndim == 1
        assert 0.8 * RATE < len(wav) < 5 * RATE, voice  # about two seconds of speech
        assert np.sqrt((wav ** 2).mean()) > 0.01, voice  # it has energy
    time.sleep(1.1)  # eSpeak NG seeds its noise with the clock's seconds unless told a seed
    again = speak(SITE, "Simple is better than complex.", VOICES[-1])  # a breathy voice
    assert np.array_equal(wav, again)  # deterministic


@needs_espeak
@needs_model
def test_the_vad_fires_on_the_speech_chunks_and_not_on_the_others() -> None:
    """Each line is one contiguous stream: every chunk's state is the model's own output on the
    chunk before (what lets an artifact be run with its own state); the VAD is off on the
    leading silence, on for most loud chunks, off again at the tail."""
    import onnxruntime as ort

    lines = ["Beautiful is better than ugly.", "Flat is better than nested."]
    audio, state, speech = vad_samples(SITE, MODEL, lines)
    n = len(audio)
    assert audio.shape == (n, CONTEXT + CHUNK) and audio.dtype == np.float32 and n > 60
    assert state.shape == (n, 2, 1, 128) and not state[0].any() and state[1].any()
    again = vad_samples(SITE, MODEL, lines)
    assert np.array_equal(audio, again[0]) and np.array_equal(state, again[1])
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    runs = [session.run(None, {"input": audio[i:i + 1], "state": state[i],
                               "sr": np.array(RATE, np.int64)}) for i in range(n)]
    prob = np.array([r[0][0, 0] for r in runs])
    starts = [i for i in range(n) if not state[i].any()]
    assert len(starts) == len(lines)  # one zero state per line, every other chunk continues
    for i in range(1, n):
        if i not in starts:
            np.testing.assert_allclose(state[i], runs[i - 1][1], rtol=1e-5, atol=1e-6)
    for begin, end in zip(starts, [*starts[1:], n]):
        assert prob[begin] < 0.5 and prob[end - 1] < 0.5, prob[begin:end].round(2)
        loud = speech[begin:end]
        assert loud.any() and np.mean(prob[begin:end][loud] > 0.5) > 0.7, prob.round(2)
