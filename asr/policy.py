"""The streaming policy: what to decode when, and which text becomes final. No I/O here.

Separated from transport and model like whisper_streaming: feed audio with
:meth:`StreamingPolicy.insert_audio_chunk`, ask for decode work with
:meth:`StreamingPolicy.next_request`, hand back the decoder's answer with
:meth:`StreamingPolicy.apply_result`, and collect finals that needed no new decode with
:meth:`StreamingPolicy.take_ready` (:class:`~asr.scheduler.DecodeScheduler` does this for many
streams). Options: :class:`~asr.options.PolicyOptions`. Time is the audio's own (samples received),
never the wall clock: the same audio gives the same requests and finals on any machine and load.

Policy (per call and channel):

* Silero VAD scores every 32 ms window. Speech above ``vad_threshold`` opens an utterance
  (with ``vad_speech_pad_ms`` of audio before it); ``vad_min_silence_ms`` below
  ``vad_neg_threshold`` closes it. Audio outside utterances is never decoded (no text on
  silence, line noise or hold music that the VAD rejects).
* While an utterance is open, a **partial** decode of the utterance so far is requested about
  every ``partial_interval_s`` of audio (greedy, cheap); at most one partial is in flight per
  stream, so a slow decoder skips partials instead of falling behind.
* When the utterance closes, a **final** decode of the whole utterance is requested (beam
  search). Its text is emitted once, with ``is_final`` and the same ``segment_id`` as the
  partials, and is never revised; partial answers that arrive after it are dropped.
* An utterance longer than ``max_segment_s`` is cut at its quietest pause in the last part
  (lowest smoothed VAD probability); the first part becomes final, the rest continues as a new
  segment. Whisper never sees more than ~``max_segment_s`` of audio per decode.
* Guards on every answer (:func:`asr.guards.guard_text`): Whisper's silence rule, repetition
  loops, known closing hallucinations, text too long for the amount of speech.

Why one module of ~430 lines: it is one state machine (VAD gating, partials, speculative finals,
long-speech cuts, the takeover point) whose parts all read and change the open utterance.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .guards import guard_text
from .options import PolicyOptions
from .types import DecodeRequest, DecodeResult, SegmentUpdate
from .vad import SAMPLE_RATE as SR
from .vad import WINDOW, WINDOW_S, StreamingVad


def _windows(ms: int) -> int:
    """A duration in whole VAD windows (at least one)."""
    return max(1, round(ms / (WINDOW_S * 1000)))


@dataclass
class _Utterance:
    segment_id: str
    start_sample: int  # global sample index (16 kHz) of audio[0]
    audio: list[np.ndarray] = field(default_factory=list)
    n: int = 0
    probs: list[float] = field(default_factory=list)  # one per VAD window from start_sample
    last_speech_end: int = 0  # global sample index just after the last speech window
    speech_windows: int = 0
    revision: int = 0
    last_partial_at: int = 0  # global sample index at the last partial request
    spec_end: int | None = None  # last_speech_end covered by the speculative final
    spec_in_flight: bool = False
    spec_result: DecodeResult | None = None

    def samples(self) -> np.ndarray:
        if len(self.audio) > 1:
            self.audio = [np.concatenate(self.audio)]
        return self.audio[0] if self.audio else np.zeros(0, dtype=np.float32)


# --------------------------------------------------------------------------- policy


class StreamingPolicy:
    """Per call+channel streaming state. Not thread-safe: the caller serialises access."""

    def __init__(
        self,
        options: PolicyOptions,
        stream: str = "s",
        *,
        start_offset_s: float = 0.0,
        segment_prefix: str | None = None,
    ) -> None:
        self.opts = options
        self.stream = stream
        self.segment_prefix = segment_prefix or stream
        # VAD windows lie on the call's own 32 ms grid (multiples of WINDOW samples from t=0), also
        # for a stream that starts mid-call (a takeover re-reading from a held-back offset): the
        # first ≤ 31 ms are skipped, so the re-read sees the windows the first reader saw and
        # mostly finds the same utterance starts, hence the same segment ids (consumers dedupe on them).
        self._skip = (-round(start_offset_s * SR)) % WINDOW
        self.offset_s = start_offset_s + self._skip / SR
        self.partials = options.partials
        self.vad = StreamingVad()
        self.total = 0  # 16 kHz samples received
        self._vad_pos = 0  # samples scored by the VAD
        self._pending = np.zeros(0, dtype=np.float32)  # received but not yet scored
        self._preroll: list[np.ndarray] = []
        self._preroll_n = 0
        self.utt: _Utterance | None = None
        self._finals: list[DecodeRequest] = []  # closed utterances waiting for a final decode
        self._partial_in_flight: str | None = None
        self._final_in_flight: set[str] = set()
        self._finalized: dict[str, None] = {}  # ordered set, bounded
        self.committed: deque[SegmentUpdate] = deque(maxlen=256)  # recent finals (bounded memory)
        self.tentative: SegmentUpdate | None = None
        self.ended = False
        # Pre-roll padding in whole VAD windows, so audio and per-window probabilities stay aligned.
        self._pad = WINDOW * math.ceil(options.vad_speech_pad_ms * SR / 1000 / WINDOW)
        self._min_silence_windows = _windows(options.vad_min_silence_ms)
        self._min_speech_windows = _windows(options.vad_min_speech_ms)
        self._max_seg = int(options.max_segment_s * SR)
        self._partial_every = int(options.partial_interval_s * SR)
        self._min_partial = int(options.min_partial_audio_s * SR)
        self._spec_windows = _windows(options.speculative_final_ms) if options.speculative_final_ms else 0
        self._spec: list[DecodeRequest] = []  # speculative finals waiting to be decoded
        self._awaiting_spec: dict[str, DecodeRequest] = {}  # closed segments whose final is speculative
        self._ready: list[SegmentUpdate] = []  # finals decided without a new decode

    # ------------------------------------------------------------------ audio in
    def time_of(self, sample: int) -> float:
        return round(self.offset_s + sample / SR, 3)

    def _segment_id(self, start_sample: int) -> str:
        """``<prefix>:<call-relative start in ms>``: the same audio gives the same id (dedupe key)."""
        return f"{self.segment_prefix}:{int(round(self.time_of(start_sample) * 1000))}"

    def _request(
        self,
        u: _Utterance,
        audio: np.ndarray,
        end: int,
        *,
        final: bool = True,
        revision: int,
        speech_windows: int | None = None,
        speculative: bool = False,
    ) -> DecodeRequest:
        """Decode work on ``audio`` of utterance ``u`` (its segment), ending at sample ``end``."""
        windows = u.speech_windows if speech_windows is None else speech_windows
        return DecodeRequest(
            stream=self.stream,
            segment_id=u.segment_id,
            audio=audio,
            final=final,
            revision=revision,
            start_s=self.time_of(u.start_sample),
            end_s=self.time_of(end),
            speech_s=windows * WINDOW / SR,
            speculative=speculative,
        )

    def insert_audio_chunk(self, audio: np.ndarray) -> None:
        """Append 16 kHz float32 mono samples."""
        if self.ended:
            raise RuntimeError(f"stream {self.stream} already finished")
        audio = audio.astype(np.float32, copy=False)
        if self._skip:
            cut = min(self._skip, len(audio))
            audio, self._skip = audio[cut:], self._skip - cut
        self.total += len(audio)
        self._pending = np.concatenate([self._pending, audio])
        probs = self.vad.process(audio)
        for p in probs:
            win = self._pending[:WINDOW]
            self._pending = self._pending[WINDOW:]
            self._on_window(win, float(p))
            self._vad_pos += WINDOW

    def _on_window(self, win: np.ndarray, p: float) -> None:
        start = self._vad_pos
        if self.utt is None:
            if p >= self.opts.vad_threshold:
                pre = np.concatenate(self._preroll) if self._preroll else np.zeros(0, dtype=np.float32)
                pre = pre[-self._pad :] if self._pad else pre[:0]
                seg_start = start - len(pre)
                self.utt = _Utterance(
                    segment_id=self._segment_id(seg_start),
                    start_sample=seg_start,
                    audio=[pre, win],
                    n=len(pre) + len(win),
                    probs=[0.0] * (len(pre) // WINDOW) + [p],
                    last_speech_end=start + WINDOW,
                    speech_windows=1,
                    last_partial_at=start,
                )
                self._preroll, self._preroll_n = [], 0
            else:
                self._preroll.append(win)
                self._preroll_n += len(win)
                while self._preroll and self._preroll_n - len(self._preroll[0]) >= self._pad:
                    self._preroll_n -= len(self._preroll.pop(0))
            return
        u = self.utt
        u.audio.append(win)
        u.n += len(win)
        u.probs.append(p)
        if p >= self.opts.vad_neg_threshold:
            u.last_speech_end = start + WINDOW
            if p >= self.opts.vad_threshold:
                u.speech_windows += 1
        silence = (start + WINDOW - u.last_speech_end) // WINDOW
        if (
            self._spec_windows
            and silence == self._spec_windows
            and silence < self._min_silence_windows
            and u.spec_end != u.last_speech_end
            and not u.spec_in_flight
            and u.speech_windows >= self._min_speech_windows
        ):
            self._speculate(u)
        if silence >= self._min_silence_windows:
            self._close_utterance(end=u.last_speech_end)
        elif u.n >= self._max_seg:
            self._cut_long_utterance()

    def _speculate(self, u: _Utterance) -> None:
        """Decode the final early, at the first short pause; it stands if the pause becomes the end."""
        keep = min(u.n, u.last_speech_end - u.start_sample + self._pad)
        u.spec_end = u.last_speech_end
        u.spec_in_flight = True
        u.spec_result = None
        end = min(u.last_speech_end, u.start_sample + keep)
        self._spec.append(self._request(u, u.samples()[:keep].copy(), end, revision=0, speculative=True))

    def _settle(self, segment_id: str) -> None:
        """The segment's final is decided (emitted, or nothing to emit): no partial replaces it."""
        self._mark_final(segment_id)
        if self.tentative and self.tentative.segment_id == segment_id:
            self.tentative = None

    def _emit_final(self, req: DecodeRequest, result: DecodeResult, revision: int) -> SegmentUpdate | None:
        self._settle(req.segment_id)
        text, conf = guard_text(result, req.speech_s, self.opts.guards)
        if not text:
            return None
        upd = SegmentUpdate(req.segment_id, req.start_s, req.end_s, text, True, revision, conf)
        self.committed.append(upd)
        return upd

    def take_ready(self) -> list[SegmentUpdate]:
        """Finals decided while audio was inserted (a speculative final whose pause became the end)."""
        out, self._ready = self._ready, []
        return out

    def _close_utterance(self, end: int) -> None:
        u = self.utt
        assert u is not None
        self.utt = None
        # The final covers the speech plus the pad; the audio after it is the next pre-roll.
        keep = min(u.n, end - u.start_sample + self._pad)
        tail = u.samples()[keep:]
        self._preroll = [tail[-self._pad :]] if self._pad and len(tail) else []
        self._preroll_n = sum(len(x) for x in self._preroll)
        if u.spec_end == end and u.speech_windows >= self._min_speech_windows:
            # The speculative decode (of this same audio) is the final. The audio stays with the
            # request: if that decode fails (release), the utterance is decoded again from it.
            spec = self._request(
                u,
                u.samples()[:keep],
                min(end, u.start_sample + u.n),
                revision=u.revision + 1,
                speculative=True,
            )
            if u.spec_result is not None:
                upd = self._emit_final(spec, u.spec_result, spec.revision)
                if upd is not None:
                    self._ready.append(upd)
                return
            if u.spec_in_flight:
                self._awaiting_spec[u.segment_id] = spec
                return
        if u.speech_windows < self._min_speech_windows:
            self._settle(u.segment_id)  # a burst too short to be an utterance
            return
        audio = u.samples()[:keep]
        self._finals.append(
            self._request(u, audio, min(end, u.start_sample + len(audio)), revision=u.revision + 1)
        )

    def _cut_long_utterance(self) -> None:
        """Cut at the quietest ~200 ms in the last 40 % of the utterance; the rest carries on."""
        u = self.utt
        assert u is not None
        probs = np.asarray(u.probs, dtype=np.float32)
        k = 6
        smooth = np.convolve(probs, np.ones(k) / k, mode="same")
        lo = int(len(probs) * 0.6)
        hi = max(lo + 1, len(probs) - 3)
        cut_win = lo + int(np.argmin(smooth[lo:hi]))
        cut = cut_win * WINDOW  # samples into the utterance
        audio = u.samples()
        head_speech = int((probs[:cut_win] >= self.opts.vad_threshold).sum())
        tail_speech = int((probs[cut_win:] >= self.opts.vad_threshold).sum())
        self._finals.append(
            self._request(
                u, audio[:cut], u.start_sample + cut, revision=u.revision + 1, speech_windows=head_speech
            )
        )
        new_start = u.start_sample + cut
        self.utt = _Utterance(
            segment_id=self._segment_id(new_start),
            start_sample=new_start,
            audio=[audio[cut:]],
            n=len(audio) - cut,
            probs=list(probs[cut_win:]),
            last_speech_end=max(u.last_speech_end, new_start),
            speech_windows=tail_speech,
            last_partial_at=u.last_partial_at,
        )

    def finish(self) -> None:
        """End of the stream: flush the VAD remainder and close any open utterance."""
        if self.ended:
            return
        if len(self._pending):
            pad = np.zeros(WINDOW - len(self._pending) % WINDOW, dtype=np.float32)
            total = self.total
            self.insert_audio_chunk(pad)
            self.total = total
        self.ended = True
        if self.utt is not None:
            self._close_utterance(end=self.utt.last_speech_end)

    def unsettled_from_s(self) -> float:
        """Call-relative time from which the received audio is not yet settled.

        Audio before it is either in a final that was handed out or was judged silence; audio
        from it on (pre-roll, the open utterance, closed utterances whose final is not decided,
        samples not yet scored by the VAD) would be lost if this stream's state were lost. The
        worker keeps the Kafka offset of that audio uncommitted, so a takeover re-reads it.
        """
        starts = [self.time_of(self._vad_pos - self._preroll_n)]
        starts += [r.start_s for r in self._finals]
        starts += [r.start_s for r in self._awaiting_spec.values()]
        if self.utt is not None:
            starts.append(self.time_of(self.utt.start_sample))
        return min(starts)

    def _mark_final(self, segment_id: str) -> None:
        self._finalized[segment_id] = None
        while len(self._finalized) > 1024:
            del self._finalized[next(iter(self._finalized))]

    # ------------------------------------------------------------------ decode scheduling
    def next_request(self, *, allow_partial: bool = True) -> DecodeRequest | None:
        """The most urgent decode work of this stream (finals first), or None."""
        for req in self._finals:
            if req.segment_id not in self._final_in_flight:
                self._final_in_flight.add(req.segment_id)
                return req
        if self._spec:
            return self._spec.pop(0)
        u = self.utt
        if (
            allow_partial
            and self.partials
            and u is not None
            and self._partial_in_flight is None
            and u.speech_windows * WINDOW >= self._min_partial
            and (u.revision == 0 or self._vad_pos - u.last_partial_at >= self._partial_every)
            and self._vad_pos - u.last_speech_end < 4 * WINDOW  # nothing new during a pause
        ):
            u.last_partial_at = self._vad_pos
            u.revision += 1
            self._partial_in_flight = u.segment_id
            audio = u.samples()
            end = min(u.last_speech_end, u.start_sample + len(audio))
            return self._request(u, audio, end, final=False, revision=u.revision)
        return None

    def has_work(self) -> bool:
        return bool(self._finals or self._spec) or (self.utt is not None and self.partials)

    @property
    def idle(self) -> bool:
        """Finished and every final delivered: the state can be dropped."""
        return (
            self.ended
            and not self._finals
            and not self._spec
            and not self._awaiting_spec
            and self.utt is None
        )

    def apply_result(self, req: DecodeRequest, result: DecodeResult) -> SegmentUpdate | None:
        """Turn a decode answer into a segment update (or None: stale or guarded away)."""
        if req.speculative:
            closed = self._awaiting_spec.pop(req.segment_id, None)
            if closed is not None:  # the pause became the end of the utterance: this is the final
                return self._emit_final(closed, result, closed.revision)
            u = self.utt
            if u is not None and u.segment_id == req.segment_id:
                u.spec_in_flight = False
                if self.time_of(u.spec_end or 0) == req.end_s:
                    u.spec_result = result  # kept until the utterance closes (or speech resumes)
            return None
        if req.final:
            self._finals = [r for r in self._finals if r.segment_id != req.segment_id]
            self._final_in_flight.discard(req.segment_id)
            if req.segment_id in self._finalized:
                return None
            return self._emit_final(req, result, req.revision)
        if self._partial_in_flight == req.segment_id:
            self._partial_in_flight = None
        if (
            req.segment_id in self._finalized
            or req.segment_id in self._awaiting_spec
            or any(r.segment_id == req.segment_id for r in self._finals)
        ):
            return None  # the final is decided or on its way: a late partial would go backwards
        text, conf = guard_text(result, req.speech_s, self.opts.guards)
        if not text:
            return None
        upd = SegmentUpdate(req.segment_id, req.start_s, req.end_s, text, False, req.revision, conf)
        self.tentative = upd
        return upd

    def release(self, req: DecodeRequest) -> None:
        """A request that failed: make it schedulable again (finals) or forget it (partials)."""
        if req.speculative:
            closed = self._awaiting_spec.pop(req.segment_id, None)
            if closed is not None:  # decode the closed utterance normally
                self._finals.append(replace(closed, speculative=False))
            elif self.utt is not None and self.utt.segment_id == req.segment_id:
                self.utt.spec_in_flight = False
            return
        if req.final:
            self._final_in_flight.discard(req.segment_id)
        elif self._partial_in_flight == req.segment_id:
            self._partial_in_flight = None
