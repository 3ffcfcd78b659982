"""The pure core's options come from the settings at the edge, with one set of defaults."""

from __future__ import annotations

import pytest

from asr.options import DecoderOptions, GuardOptions, PolicyOptions
from asr.settings import AsrSettings


def test_settings_defaults_are_the_options_defaults() -> None:
    s = AsrSettings()
    assert s.policy_options() == PolicyOptions()
    assert s.guard_options() == GuardOptions()
    assert s.decoder_options() == DecoderOptions()


def test_environment_reaches_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASAN_ASR_VAD_MIN_SILENCE_MS", "700")
    monkeypatch.setenv("DASAN_ASR_PUBLISH_PARTIALS", "false")
    monkeypatch.setenv("DASAN_ASR_MIN_AVG_LOGPROB", "-1.5")
    monkeypatch.setenv("DASAN_ASR_BEAM_SIZE", "3")
    s = AsrSettings()
    p = s.policy_options()
    assert (p.vad_min_silence_ms, p.partials, p.guards.min_avg_logprob) == (700, False, -1.5)
    assert s.decoder_options().beam_size == 3
