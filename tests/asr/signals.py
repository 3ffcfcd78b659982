"""Synthetic non-speech test signals (16 kHz float32)."""

from __future__ import annotations

import numpy as np

SR = 16_000


def non_speech(dur_s: int = 12) -> dict[str, np.ndarray]:
    t = np.arange(SR * dur_s) / SR
    rng = np.random.default_rng(0)
    out = {
        "silence": np.zeros_like(t),
        "white_noise": rng.standard_normal(len(t)) * 0.05,
        "mains_hum": 0.1 * np.sin(2 * np.pi * 60 * t) + 0.01 * rng.standard_normal(len(t)),
    }
    # Hold music: an arpeggio of decaying notes with harmonics and vibrato.
    notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6]
    music = np.zeros_like(t)
    for i in range(dur_s * 2):
        f = notes[i % len(notes)]
        seg = slice(i * SR // 2, (i + 1) * SR // 2)
        tt = t[seg]
        env = np.exp(-3 * (tt - tt[0]))
        music[seg] = env * sum(
            0.2 / k * np.sin(2 * np.pi * f * k * tt + 0.3 * np.sin(2 * np.pi * 5 * tt)) for k in (1, 2, 3)
        )
    out["hold_music"] = music
    # Line noise: low-frequency rumble with crackle.
    walk = np.cumsum(rng.standard_normal(len(t))) * 0.001
    walk -= np.convolve(walk, np.ones(400) / 400, "same")
    out["line_noise"] = walk + (rng.random(len(t)) < 0.001) * 0.5
    return {k: v.astype(np.float32) for k, v in out.items()}
