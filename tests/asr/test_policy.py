"""Streaming policy invariants with the real Silero VAD and a scripted decoder.

The scripted decoder (like livekit's fake STT) answers with text that depends only on the window,
so the policy's bookkeeping can be checked exactly; the real model is tested in test_accuracy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import pytest

from asr.guards import collapse_repeats, compression_ratio, guard_text, strip_hallucinations
from asr.options import GuardOptions, PolicyOptions
from asr.policy import StreamingPolicy
from asr.scheduler import DecodeScheduler
from asr.types import DecodeRequest, DecodeResult, SegmentUpdate
from asr.vad import WINDOW

from .conftest import load_mono
from .signals import SR, non_speech


def scripted(reqs: Sequence[DecodeRequest]) -> list[DecodeResult]:
    """Text grows with the window: one syllable per 0.25 s of audio."""
    syl = "가나다라마바사아자차카타파하"
    return [DecodeResult((syl * 20)[: max(1, int(len(r.audio) / SR * 4))], -0.2, 0.01) for r in reqs]


@pytest.fixture(scope="module")
def speech(audio_dev: list[dict]) -> np.ndarray:
    """Three utterances with 1.5 s pauses (≈ 30 s)."""
    parts = []
    for row in audio_dev[:3]:
        x, rate = load_mono(row["path"])
        assert rate == SR
        parts += [np.zeros(int(1.5 * SR), np.float32), x]
    return np.concatenate([*parts, np.zeros(SR, np.float32)])


def run(
    policy: StreamingPolicy, audio: np.ndarray, chunk: int = 1600
) -> tuple[list[SegmentUpdate], list[tuple[int, DecodeRequest]]]:
    updates: list[SegmentUpdate] = []
    requests: list[tuple[int, DecodeRequest]] = []
    for i in range(0, len(audio), chunk):
        policy.insert_audio_chunk(audio[i : i + chunk])
        updates += policy.take_ready()
        while (r := policy.next_request()) is not None:
            requests.append((policy.total, r))
            (res,) = scripted([r])
            if (u := policy.apply_result(r, res)) is not None:
                updates.append(u)
    policy.finish()
    updates += policy.take_ready()
    while (r := policy.next_request()) is not None:
        requests.append((policy.total, r))
        if (u := policy.apply_result(r, scripted([r])[0])) is not None:
            updates.append(u)
    return updates, requests


def check_invariants(updates: list) -> dict[str, list]:
    by_seg: dict[str, list] = {}
    for u in updates:
        by_seg.setdefault(u.segment_id, []).append(u)
    for seg, ups in by_seg.items():
        revs = [u.revision for u in ups]
        assert revs == sorted(set(revs)), f"{seg}: revisions not increasing {revs}"
        finals = [u for u in ups if u.is_final]
        assert len(finals) == 1, f"{seg}: {len(finals)} finals"
        assert ups[-1].is_final, f"{seg}: an update came after the final"
        assert all(u.start_s == ups[0].start_s for u in ups)
    finals = sorted((u for u in updates if u.is_final), key=lambda u: u.start_s)
    for a, b in zip(finals, finals[1:], strict=False):
        assert a.end_s <= b.start_s + 1e-6, "final segments overlap"
    return by_seg


def test_utterances_partials_and_finals(speech: np.ndarray, audio_dev: list[dict]) -> None:
    s = PolicyOptions()
    updates, requests = run(StreamingPolicy(s, "caller"), speech)
    by_seg = check_invariants(updates)
    assert len(by_seg) == 3  # one segment per utterance
    finals = sorted((u for u in updates if u.is_final), key=lambda u: u.start_s)
    # Segment boundaries follow the audio: utterance i starts after its 1.5 s pause.
    t = 0.0
    for row, f in zip(audio_dev[:3], finals, strict=True):
        t += 1.5
        assert t - 0.5 < f.start_s < t + 2.5  # the recordings start with up to ~1.5 s of silence
        assert f.end_s < t + row["duration_s"] + 0.3
        t += row["duration_s"]
    # Partials: about one per partial_interval of audio, never two in flight.
    for seg, ups in by_seg.items():
        partial_reqs = [(n, r) for n, r in requests if r.segment_id == seg and not r.final]
        assert len(partial_reqs) >= 3
        gaps = np.diff([n for n, _ in partial_reqs]) / SR
        assert gaps.min() >= s.partial_interval_s - 0.11
        assert len([u for u in ups if not u.is_final]) == len(partial_reqs)


def test_chunk_size_does_not_change_segmentation(speech: np.ndarray) -> None:
    s = PolicyOptions(partials=False)
    a, _ = run(StreamingPolicy(s, "x"), speech, chunk=160)
    b, _ = run(StreamingPolicy(s, "x"), speech, chunk=7919)
    assert [(u.segment_id, u.start_s, u.end_s, u.text) for u in a] == [
        (u.segment_id, u.start_s, u.end_s, u.text) for u in b
    ]


def test_long_speech_is_cut_below_max_segment(speech: np.ndarray) -> None:
    s = PolicyOptions(max_segment_s=5.0, vad_min_silence_ms=2000)
    updates, requests = run(StreamingPolicy(s, "x"), speech)
    check_invariants(updates)
    assert max(len(r.audio) for _, r in requests) <= 5.0 * SR + 512
    finals = [u for u in updates if u.is_final]
    assert len(finals) >= 6


def test_late_partial_after_final_is_dropped(speech: np.ndarray) -> None:
    p = StreamingPolicy(PolicyOptions(), "x")
    partial = None
    for i in range(0, len(speech), 1600):
        p.insert_audio_chunk(speech[i : i + 1600])
        r = p.next_request()
        if r is not None and not r.final and partial is None:
            partial = r  # keep it "in flight"
        elif r is not None:
            p.apply_result(r, scripted([r])[0])
        if partial is not None and any(x.segment_id == partial.segment_id for x in p.committed):
            break
    assert partial is not None
    assert p.apply_result(partial, scripted([partial])[0]) is None


def test_timestamps_are_call_relative_with_offset(speech: np.ndarray) -> None:
    a, _ = run(StreamingPolicy(PolicyOptions(partials=False), "x"), speech)
    b, _ = run(StreamingPolicy(PolicyOptions(partials=False), "x", start_offset_s=120.0), speech)
    assert [u.start_s + 120 for u in a] == pytest.approx([u.start_s for u in b], abs=1e-3)
    assert all(u.segment_id.startswith("x:") for u in b)


def test_a_stream_joined_mid_call_keeps_the_calls_vad_grid(speech: np.ndarray) -> None:
    """A worker taking a call over starts at a frame boundary (200 ms steps), not on the 32 ms VAD
    grid of the worker before it: it skips to the call's grid, so its segments (and their ids,
    derived from the start) fall where the first reader's did."""
    start = 1.4  # 22,400 samples: 384 past a window boundary
    b, _ = run(StreamingPolicy(PolicyOptions(partials=False), "x", start_offset_s=start), speech)
    finals = [u for u in b if u.is_final]
    assert finals and all(round(u.start_s * SR) % WINDOW == 0 for u in finals), [u.start_s for u in finals]
    assert all(u.start_s >= start for u in finals)


@pytest.mark.parametrize("name", list(non_speech()))
def test_non_speech_is_never_decoded(name: str) -> None:
    x = non_speech()[name]
    _, requests = run(StreamingPolicy(PolicyOptions(), name), x)
    assert requests == []


def test_scheduler_batches_across_streams(speech: np.ndarray) -> None:
    """Four streams fed in lock-step: due windows are decoded together, finals first."""
    batches: list[list[DecodeRequest]] = []

    def decode(reqs: Sequence[DecodeRequest]) -> list[DecodeResult]:
        batches.append(list(reqs))
        return scripted(reqs)

    got: list = []
    sched = DecodeScheduler(
        decode, batch_size=3, batch_window_ms=0, on_update=lambda k, u: got.append((k, u))
    )
    keys = [f"call{i}:caller" for i in range(4)]
    for k in keys:
        sched.add(k, StreamingPolicy(PolicyOptions(), k))
    for i in range(0, len(speech), 1600):
        for k in keys:
            sched.insert(k, speech[i : i + 1600])
        sched.step(wait=False)
    for k in keys:
        sched.finish(k)
    sched.drain()
    assert max(len(b) for b in batches) == 3  # batch_size respected, and batches do fill up
    assert all(len({r.stream for r in b}) == len(b) for b in batches)  # one window per stream per batch
    for b in batches:  # finals never wait behind partials within a batch
        kinds = [r.final for r in b]
        assert kinds == sorted(kinds, reverse=True)
    per_stream = {k: [u for kk, u in got if kk == k] for k in keys}
    for ups in per_stream.values():
        check_invariants(ups)
        assert len([u for u in ups if u.is_final]) == 3
    assert sched.active() == 0  # finished streams are released


def test_scheduler_gives_an_answer_only_to_the_policy_that_asked(speech: np.ndarray) -> None:
    """A stream dropped while its decode is in flight (its partition revoked) and started afresh
    under the same key (the partition came back): the old answer does not reach the new policy."""
    key = "call:caller"
    sched: DecodeScheduler
    swapped: list[StreamingPolicy] = []

    def decode(reqs: Sequence[DecodeRequest]) -> list[DecodeResult]:
        if not swapped:  # the consumer thread, meanwhile: revoke, reassign, re-read
            sched.drop(key)
            swapped.append(sched.add(key, StreamingPolicy(PolicyOptions(), key)))
        return scripted(reqs)

    got: list = []
    sched = DecodeScheduler(decode, batch_window_ms=0, on_update=lambda k, u: got.append(u))
    sched.add(key, StreamingPolicy(PolicyOptions(speculative_final_ms=0, partials=False), key))
    sched.insert(key, speech[: 12 * SR])
    sched.finish(key)
    assert sched.step(wait=False) >= 1 and swapped
    assert got == [] and swapped[0].committed == deque() and not swapped[0]._finalized


# --------------------------------------------------------------------------- guards


def test_guards_drop_hallucinations_and_loops() -> None:
    s = GuardOptions()
    ok = DecodeResult("불법 주정차 신고하려고요", -0.2, 0.02)
    assert guard_text(ok, 2.0, s)[0] == "불법 주정차 신고하려고요"
    assert 0.7 < (guard_text(ok, 2.0, s)[1] or 0) <= 1
    assert guard_text(DecodeResult("시청해주셔서 감사합니다.", -0.3, 0.1), 1.0, s)[0] == ""
    assert guard_text(DecodeResult("구독과 좋아요 부탁드립니다", -0.3, 0.1), 1.0, s)[0] == ""
    assert (
        guard_text(DecodeResult("과태료 문의요. 시청해 주셔서 감사합니다", -0.3, 0.1), 2.0, s)[0]
        == "과태료 문의요."
    )
    assert guard_text(DecodeResult("네 네", -1.5, 0.9), 1.0, s)[0] == ""  # no_speech with low logprob
    loop = "감사합니다 " * 30
    assert compression_ratio(loop) > s.compression_ratio_threshold
    assert guard_text(DecodeResult(loop, -0.3, 0.1), 10.0, s)[0] == "감사합니다 감사합니다"
    # Far more text than the speech could hold.
    assert guard_text(DecodeResult("가나다라마바사아자차카타파하" * 5, -0.2, 0.1), 1.0, s)[0] == ""


def test_collapse_and_strip() -> None:
    assert collapse_repeats("a b a b a b a b c") == "a b a b c"
    assert collapse_repeats("하하하하하하하하") == "하하"
    assert strip_hallucinations("MBC 뉴스 김철수입니다.") == ""
    assert strip_hallucinations("대형폐기물 신고는 어디서") == "대형폐기물 신고는 어디서"


def test_speculative_finals_equal_plain_finals(speech: np.ndarray) -> None:
    """Finals decoded early at a pause are kept only when the pause is the end: same finals either way."""
    spec, spec_reqs = run(StreamingPolicy(PolicyOptions(speculative_final_ms=250), "x"), speech)
    plain, plain_reqs = run(StreamingPolicy(PolicyOptions(speculative_final_ms=0), "x"), speech)
    key = [(u.segment_id, u.start_s, u.end_s, u.text) for u in spec if u.is_final]
    assert key == [(u.segment_id, u.start_s, u.end_s, u.text) for u in plain if u.is_final]
    n_spec = sum(r.speculative for _, r in spec_reqs)
    assert n_spec >= len(key)  # every final came from a speculative decode …
    assert not any(r.final and not r.speculative for _, r in spec_reqs)  # … none needed a second one
    assert not any(r.speculative for _, r in plain_reqs)
    check_invariants(spec)


def test_a_failed_speculative_decode_still_gives_the_final(speech: np.ndarray) -> None:
    """A speculative final's decode fails (the scheduler releases it) after its pause became the
    end of the utterance: the utterance is decoded again, from its audio, and gets its final."""
    p = StreamingPolicy(PolicyOptions(partials=False), "x")
    held: list[DecodeRequest] = []  # speculative decodes "in the decoder"
    failed: list[DecodeRequest] = []
    finals: list = []

    def answer(r: DecodeRequest) -> None:
        if (u := p.apply_result(r, scripted([r])[0])) is not None:
            finals.append(u)

    for i in range(0, len(speech), 1600):
        p.insert_audio_chunk(speech[i : i + 1600])
        for r in list(held):
            if r.segment_id in p._awaiting_spec:  # the pause became the end: now it fails
                held.remove(r)
                p.release(r)
                failed.append(r)
            elif p.utt is None or p.time_of(p.utt.last_speech_end) > r.end_s:  # speech went on
                held.remove(r)
                answer(r)
        while (req := p.next_request()) is not None:
            held.append(req) if req.speculative else answer(req)
    for r in held:
        answer(r)
    p.finish()
    while (req := p.next_request()) is not None:
        answer(req)
    assert failed  # the failure happened
    assert len([u for u in finals if u.is_final]) == 3  # every utterance has its final …
    for r in failed:
        (u,) = [u for u in finals if u.segment_id == r.segment_id]
        assert u.text == scripted([r])[0].text  # … decoded from the same audio as the speculation
    check_invariants(finals)


def test_state_stays_bounded_over_a_long_call(speech: np.ndarray) -> None:
    """Ten minutes of speech and pauses: buffers hold at most one utterance, history is capped."""
    p = StreamingPolicy(PolicyOptions(), "x")
    long = np.tile(speech, 20)  # ≈ 10 min
    updates, _ = run(p, long, chunk=16000)
    assert len([u for u in updates if u.is_final]) == 60
    assert p.utt is None and p._preroll_n <= p._pad + 512
    assert len(p.committed) <= 256 and len(p._finalized) <= 1024
    assert not p._finals and not p._spec and not p._awaiting_spec


def test_unsettled_point_never_passes_audio_without_a_final(speech: np.ndarray) -> None:
    """What the worker keeps uncommitted on Kafka: the unsettled point only moves forward, stays
    at or before the start of every utterance whose final is not out yet, and passes a
    segment only after its final was handed out."""
    pol = StreamingPolicy(PolicyOptions(), "s")
    finals: list = []
    last = pol.unsettled_from_s()
    assert last == 0.0
    chunk = 1600
    for i in range(0, len(speech), chunk):
        pol.insert_audio_chunk(speech[i : i + chunk])
        finals += [u for u in pol.take_ready() if u.is_final]
        here = pol.unsettled_from_s()
        assert here >= last - 1e-9, "the unsettled point went backwards"
        if pol.utt is not None:
            assert here <= pol.time_of(pol.utt.start_sample)
        for closed in pol._finals:  # closed, final not decoded yet
            assert here <= closed.start_s
        last = here
        while (r := pol.next_request()) is not None:
            (res,) = scripted([r])
            if (u := pol.apply_result(r, res)) is not None and u.is_final:
                finals.append(u)
                assert pol.unsettled_from_s() >= u.end_s - 1e-6 or pol.utt is not None
    assert len(finals) >= 3
    # After the last final, everything up to the end of its speech is settled.
    assert pol.unsettled_from_s() >= finals[-1].end_s
