"""Speech for the zoo's voice-activity detector: English sentences spoken by eSpeak NG.

The speech engine is the one inside the ``espeakng-loader`` wheel (``libespeak-ng.so`` and its
``espeak-ng-data``), which :mod:`bench.zoo_fetch` extracts into the zoo's ``site`` folder like
any other data wheel; it is driven through ``ctypes`` (``espeak_Initialize`` in
synchronous mode, the samples collected by the synth callback) in a child process, so that the
audio is the same on every run. Nothing is downloaded and no system espeak is needed. eSpeak
NG's 22 050 Hz output is resampled to 16 kHz.

:func:`vad_samples` turns the utterances into Silero VAD inputs as Silero's own wrapper feeds
its ONNX model: each 512-sample chunk behind the 64 samples before it (576 samples), with the
recurrent state the model left after the utterance's earlier chunks (zero at its start).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

__all__ = ["CHUNK", "CONTEXT", "RATE", "VOICES", "Voice", "library_files", "speak", "speak_all",
           "vad_samples"]

RATE = 16000
CHUNK = 512
"""Samples of new audio per VAD step at 16 kHz (Silero's only chunk size at that rate)."""
CONTEXT = 64
"""Samples of the previous chunk that Silero's wrapper puts in front of each chunk."""
LIBRARY = "espeakng_loader/libespeak-ng.so"
DATA = "espeakng_loader/espeak-ng-data"

_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_SEED = 1
"""eSpeak NG's noise generator (breathy voices) is seeded with this, not with the time."""
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """An eSpeak NG voice (``language+variant``), its speed in words a minute and pitch (0-100)."""

    name: str
    words_per_minute: int
    pitch: int


VOICES = (Voice("en-us+m3", 165, 45), Voice("en+f2", 150, 65), Voice("en-gb-x-rp+m1", 185, 40),
          Voice("en-us+f4", 140, 70), Voice("en+m7", 200, 35), Voice("en-gb-scotland+f3", 170, 55))


def library_files(site: Path) -> tuple[Path, Path]:
    """``(libespeak-ng.so, espeak-ng-data)`` under *site*; FileNotFoundError if not fetched."""
    lib, data = site / LIBRARY, site / DATA
    if not lib.is_file() or not (data / "phontab").is_file():
        raise FileNotFoundError(f"no eSpeak NG under {site / 'espeakng_loader'}; "
                                "run bench/zoo_fetch.py (it extracts the espeakng-loader wheel)")
    return lib, data


class _Engine:
    """The loaded libespeak-ng of a :func:`speak_all` child (its state is global to the process)."""

    def __init__(self, lib_path: Path, data: Path) -> None:
        self.lib = lib = ctypes.CDLL(str(lib_path))
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, str(data).encode(), 0)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.rate}) with data {data}")
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(_SEED)  # in place of the clock's seconds it was seeded with
        self._pieces: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced while the library holds it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count: int, _events) -> int:
        if count > 0 and wav:
            self._pieces.append(np.ctypeslib.as_array(wav, (count,)).copy())
        return 0

    def say(self, text: str, voice: Voice) -> np.ndarray:
        """*text* spoken by *voice*: int16 samples at the engine's rate."""
        for call, args in (("espeak_SetVoiceByName", (voice.name.encode(),)),
                           ("espeak_SetParameter", (_RATE, voice.words_per_minute, 0)),
                           ("espeak_SetParameter", (_PITCH, voice.pitch, 0))):
            if getattr(self.lib, call)(*args) != 0:
                raise RuntimeError(f"{call}{args} failed for voice {voice.name!r}")
        self._pieces = []
        raw = text.encode() + b"\0"
        if self.lib.espeak_Synth(raw, len(raw), 0, 1, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"espeak_Synth failed on {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)


def speak_all(site: Path, lines: list[tuple[str, Voice]]) -> list[np.ndarray]:
    """Each ``(text, voice)`` of *lines* spoken with the eSpeak NG of *site*: float32 in [-1, 1]
    at 16 kHz.

    eSpeak NG carries state from one utterance to the next (the same sentence said twice in
    one process comes out with other samples and lengths), so the lines are spoken by a fresh
    library in a child process (this file run as a script), its noise generator seeded with
    :data:`_SEED`: the audio depends on *lines* alone.
    """
    import json
    import subprocess
    import sys
    import tempfile

    from scipy.signal import resample_poly

    lib, data = library_files(site)
    with tempfile.TemporaryDirectory(prefix="zoo-speech-") as tmp:
        request, out = Path(tmp) / "request.json", Path(tmp) / "speech.npz"
        request.write_text(json.dumps({"library": str(lib), "data": str(data), "lines": [
            [text, voice.name, voice.words_per_minute, voice.pitch] for text, voice in lines]}))
        proc = subprocess.run([sys.executable, "-P", str(Path(__file__).resolve()), str(request),
                               str(out)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise RuntimeError(f"eSpeak NG worker failed: {last}")
        with np.load(out) as got:
            rate, raw = int(got["rate"]), [got[f"line{i}"] for i in range(len(lines))]
    g = gcd(RATE, rate)
    return [resample_poly(r.astype(np.float64) / 32768, RATE // g, rate // g).astype(np.float32)
            for r in raw]


def speak(site: Path, text: str, voice: Voice) -> np.ndarray:
    """*text* spoken by *voice* (:func:`speak_all` of one line)."""
    return speak_all(site, [(text, voice)])[0]


def _chunk_rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x[: len(x) // CHUNK * CHUNK].reshape(-1, CHUNK) ** 2).mean(axis=1))


def vad_samples(site: Path, model: Path, sentences: list[str], seed: int = 0,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sentence as the VAD streams it: ``(input [n, 576], state [n, 2, 1, 128], speech [n])``.

    Each sentence is spoken by the next voice of :data:`VOICES` between 0.4 s of silence before
    and 1.2 s after, over a seeded noise floor (about -54 dBFS; every other sentence ends in
    louder noise, about -34 dBFS, instead of silence). The utterance is streamed through the
    Silero ONNX *model* as its wrapper does (context + chunk, state carried over): every chunk
    from the first (silence, zero state) to the one 0.8 s after the last loud chunk (the VAD's
    probability takes about half a second to fall after speech) is a sample, with the state
    the model left after the chunk before — a contiguous stream, so that an artifact can be
    run on it with its own state (:mod:`converters.streams`). ``speech`` marks the loud chunks
    (energy at least a third of the loudest); it comes from the audio, not from the model.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    sr = np.array(RATE, np.int64)
    inputs, states, speech = [], [], []
    spoken = speak_all(site, [(t, VOICES[i % len(VOICES)]) for i, t in enumerate(sentences)])
    for i, voiced in enumerate(spoken):
        voiced = voiced / max(float(np.abs(voiced).max()), 1e-6) * rng.uniform(0.3, 0.8)
        lead, tail = np.zeros(int(0.4 * RATE)), np.zeros(int(1.2 * RATE))
        if i % 2:
            tail = tail + rng.normal(0, 0.02, len(tail))
        audio = np.concatenate([lead, voiced, tail])
        audio = (audio + rng.normal(0, 0.002, len(audio))).astype(np.float32)
        rms = _chunk_rms(audio)
        loud = rms >= rms.max() / 3
        end = min(int(np.flatnonzero(loud).max()) + int(0.8 * RATE) // CHUNK,
                  len(audio) // CHUNK - 1)
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros(CONTEXT, np.float32)
        for k in range(end + 1):
            window = np.concatenate([context, audio[k * CHUNK:(k + 1) * CHUNK]])
            inputs.append(window)
            states.append(state)
            speech.append(bool(loud[k]))
            state = session.run(None, {"input": window[None], "state": state, "sr": sr})[1]
            context = window[-CONTEXT:]
    return np.stack(inputs), np.stack(states), np.asarray(speech)


def _worker(request: Path, out: Path) -> None:
    """The child of :func:`speak_all`: speak the request's lines, save int16 arrays and the rate."""
    import json

    req = json.loads(request.read_text())
    engine = _Engine(Path(req["library"]), Path(req["data"]))
    said = {f"line{i}": engine.say(text, Voice(name, wpm, pitch))
            for i, (text, name, wpm, pitch) in enumerate(req["lines"])}
    np.savez(out, rate=np.int64(engine.rate), **said)


if __name__ == "__main__":
    import sys

    _worker(Path(sys.argv[1]), Path(sys.argv[2]))
