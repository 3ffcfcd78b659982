"""Resilience end to end: process kills and a broker outage, with every service its own OS process.

The services run exactly as in production (``dasan assist run``, ``dasan console run``,
``dasan asr gateway``, ``dasan asr worker``), configured only through environment variables, on
loopback ports, against a real Kafka broker (Tansu). What is checked is what a counselor would see
(the console's websocket and REST API) or what downstream consumers read (Kafka topics):

* **assist killed** (SIGKILL) in the middle of a scripted call, a second instance started: every
  final caller segment ends up on exactly one suggestion card on the counselor's screen.
* **ASR worker killed** (SIGKILL) in the middle of an utterance of real recorded Korean speech,
  a second worker started: the call is transcribed to the end, no final is duplicated, and no
  utterance lost audio (its text still matches the reference).
* **broker outage** (the Tansu process frozen with SIGSTOP, then SIGCONT: nothing lost): every
  service's ``/readyz`` turns 503 while the broker does not answer and 200 again afterwards without
  a restart, the console's websocket reports the recorder down then up, and calls flow end to end.

Each test has a hard time limit (pytest-timeout) and polls with deadlines; nothing relies on a
sleep being long enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assist.dialogue import is_closing
from dasan.simulator import load_script, play_audio_call, play_scripted_call
from dasan.stack import Service, add_user, console_login, cookie_header
from streaming.events import (
    Channel,
    Event,
    Suggestion,
    TranscriptSegment,
)
from streaming.kafka import EventProducer
from streaming.privacy import mask_text
from streaming.settings import KafkaSettings
from streaming.topics import ASSIST_SUGGESTIONS, CALL_TRANSCRIPTS
from tests.e2e.conftest import ServiceStarter
from tests.kafka_util import read_topic
from tests.util import wait_for

# BM25 scores of the corpus slice: in-scope questions score well above this, small talk below
# (the same threshold as tests/assist, whose slice is a subset of this one).
BM25_CONFIDENCE = "8.0"


# --------------------------------------------------------------------------- helpers


def puts_card_up(seg: TranscriptSegment) -> bool:
    """Whether a final caller segment should put a card up: all but a closing (thanks, a promise;
    the assist tracker's own rule, on the masked text it sees)."""
    return not is_closing(mask_text(seg.text))


def new_counselor(env: dict[str, str], unique: str) -> tuple[str, str]:
    """A counselor of team 1팀 in the console's database: (name, password)."""
    name = f"coun-{unique}"
    return name, add_user(env, name, "counselor", team="1팀")


class Console:
    """A logged-in browser session on the console (session cookie + CSRF, as the log-in form does)."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = console_login(self.base, username, password)

    @property
    def cookie(self) -> str:
        return cookie_header(self.http)

    def events(self, call_id: str) -> list[dict[str, Any]]:
        """Every stored event of a call (REST), [] while the console has not seen the call."""
        r = self.http.get(f"/api/calls/{call_id}/events", params={"limit": 5000})
        return r.json() if r.status_code == 200 else []

    def follow(self, call_id: str) -> CallFollower:
        f = CallFollower(self.base.replace("http://", "ws://"), self.base, self.cookie, call_id)
        f.start()
        return f

    def close(self) -> None:
        self.http.close()


class CallFollower(threading.Thread):
    """Follows one call on the console websocket the way the counselor's page does: it applies
    each event once (``seq`` above the last applied) and reconnects with ``?after=<last seq>``
    after any drop. Keeps every applied event and every status message."""

    def __init__(self, ws_base: str, origin: str, cookie: str, call_id: str) -> None:
        super().__init__(daemon=True, name=f"follow-{call_id}")
        self.url = f"{ws_base}/ws/calls/{call_id}"
        self.origin, self.cookie, self.call_id = origin, cookie, call_id
        self.items: list[dict[str, Any]] = []
        self.statuses: list[tuple[float, dict[str, Any]]] = []
        self.last = 0
        self.connects = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        import websockets

        while not self._halt.is_set():
            try:
                async with websockets.connect(
                    f"{self.url}?after={self.last}",
                    additional_headers={"Cookie": self.cookie, "Origin": self.origin},
                    max_size=2**22,
                    open_timeout=5,
                ) as ws:
                    self.connects += 1
                    while not self._halt.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=0.3)
                        except TimeoutError:
                            continue
                        self._apply(json.loads(raw))
            except (OSError, TimeoutError, websockets.WebSocketException):
                await asyncio.sleep(0.3)  # not recorded yet (4404) or dropped: resume from self.last

    def _apply(self, msg: dict[str, Any]) -> None:
        with self._lock:
            if msg.get("type") == "events":
                for item in msg["items"]:
                    if item["seq"] > self.last:
                        self.last = item["seq"]
                        self.items.append(item)
            elif msg.get("type") == "status":
                self.statuses.append((time.monotonic(), msg))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [it["event"] for it in self.items if it["event"].get("type") == kind]

    def status_since(self, t: float) -> list[dict[str, Any]]:
        with self._lock:
            return [m for at, m in self.statuses if at >= t]

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def cards(follower: CallFollower) -> Counter[str]:
    """How many suggestion cards on screen name each trigger segment."""
    return Counter(s for ev in follower.of_type("suggestion") for s in ev["trigger_segment_ids"])


class TopicTail(threading.Thread):
    """Collects the events of one call from a topic as they are published (from the beginning)."""

    def __init__(self, kafka: KafkaSettings, topic: str, call_id: str) -> None:
        super().__init__(daemon=True, name=f"tail-{topic}")
        self.kafka, self.topic, self.call_id = kafka, topic, call_id
        self.events: list[tuple[float, Event]] = []  # (monotonic arrival, event)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.ready = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from streaming.codec import decode

        cfg = self.kafka.consumer_config(None)
        cfg.update(enable_auto_commit=False)
        c = KafkaConsumer(**cfg)
        try:
            tps = [TopicPartition(self.topic, p) for p in sorted(c.partitions_for_topic(self.topic) or [])]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            self.ready.set()
            key = self.call_id.encode()
            while not self._halt.is_set():
                for recs in c.poll(timeout_ms=200).values():
                    for rec in recs:
                        if rec.key == key:
                            ev = decode(rec.value, list(rec.headers or []), rec.key)
                            with self._lock:
                                self.events.append((time.monotonic(), ev))
        finally:
            c.close()

    def finals(self) -> list[tuple[float, TranscriptSegment]]:
        with self._lock:
            return [(t, e) for t, e in self.events if isinstance(e, TranscriptSegment) and e.is_final]

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def in_thread(coro_fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run an async callable to completion in a background thread; the result lands in box."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(coro_fn())
        except BaseException as exc:  # reported by the test that joins
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# --------------------------------------------------------------------------- service fixtures


@pytest.fixture()
def assist_env(slice_indexes: dict[str, Path], unique: str) -> dict[str, str]:
    """Assist settings of these tests.

    The knowledge base is lexical only (no embedding model: retrieval quality is not what is
    tested): the prebuilt ``lexical`` index of the slice.
    ``MIN_EVIDENCE_TERMS=0`` and ``REPEAT_WINDOW=0`` make *every* final caller segment with text
    trigger, and every trigger publish a card, so "each final caller segment has exactly one card"
    is an exact expectation rather than one that depends on the trigger policy.
    """
    return {
        "DASAN_KB_DENSE_ENABLED": "false",
        "DASAN_KB_ABSTAIN_BM25_THRESHOLD": BM25_CONFIDENCE,
        "DASAN_ASSIST_GROUP_ID": f"assist-{unique}",
        "DASAN_ASSIST_MIN_EVIDENCE_TERMS": "0",
        "DASAN_ASSIST_REPEAT_WINDOW": "0",
        "DASAN_ASSIST_SUMMARY_GRACE_MS": "1500",
        "DASAN_LOG_LEVEL": "INFO",
    }


def console_env(unique: str) -> dict[str, str]:
    return {"DASAN_CONSOLE_RECORDER_GROUP": f"recorder-{unique}", "DASAN_LOG_LEVEL": "INFO"}


def asr_env(unique: str) -> dict[str, str]:
    """Whisper base on CPU, one thread per worker (as tests/asr). Partials are decoded every 3 s
    rather than every second: they are not what is tested and would double the CPU work."""
    return {
        "DASAN_ASR_GROUP_ID": f"asr-{unique}",
        "DASAN_ASR_DEVICE": "cpu",
        "DASAN_ASR_CPU_THREADS": "1",
        "DASAN_ASR_PARTIAL_INTERVAL_S": "3",
        "DASAN_LOG_LEVEL": "INFO",
    }


@pytest.fixture()
def producer(kafka_settings: KafkaSettings) -> Iterator[EventProducer]:
    p = EventProducer(kafka_settings)
    yield p
    p.close()


# --------------------------------------------------------------------------- 1. assist killed


@pytest.mark.timeout(300)
def test_assist_killed_mid_call_every_caller_segment_gets_exactly_one_card(
    start_service: ServiceStarter,
    e2e_env: dict[str, str],
    assist_env: dict[str, str],
    kafka_settings: KafkaSettings,
    producer: EventProducer,
    shared_dir: Path,
    unique: str,
) -> None:
    """A scripted call (eval-dev DCALL03, ten caller turns and a change of topic) plays into
    ``call.transcripts``; once the counselor's screen shows two suggestion cards, the assist service
    is SIGKILLed (no commit, no goodbye) and a fresh instance is started in the same group. At the
    end every final caller segment of the call is named by exactly one card on the console — none
    lost, none twice — and the cards on screen are exactly the suggestions on Kafka."""
    console_svc, assist_a = start_service.together(
        Service.of("console", env=console_env(unique)),
        Service.of("assist", name="assist-a", env=assist_env, args=["--instance", "A"]),
    )
    name, password = new_counselor(e2e_env, unique)
    console = Console(console_svc.port, name, password)
    script = next(s for s in load_script(shared_dir / "eval-dev" / "calls.jsonl") if s.call_id == "DCALL03")
    caller_turns = [t for t in script.turns if t["speaker"] != "counselor"]
    assert len(caller_turns) >= 8 and all(t["text"].strip() for t in caller_turns)
    call_id = f"fault-assist-{unique}"
    caller_finals: list[str] = []
    closings: list[str] = []  # the caller's thanks at the end puts no card up (assist/dialogue.py)

    def on_final(seg: TranscriptSegment) -> None:
        if seg.channel == Channel.caller:
            caller_finals.append(seg.segment_id)
            if not puts_card_up(seg):
                closings.append(seg.segment_id)

    # 5x real time: the 150 s call lasts about 30 s, long enough for the takeover to happen inside it
    sim, box = in_thread(
        lambda: play_scripted_call(
            producer, script, call_id=call_id, counselor_id=name, speed=5.0, on_final=on_final
        )
    )
    follower = wait_for(
        lambda: console.follow(call_id) if console.events(call_id) else None, 60, "the call on the console"
    )
    try:
        wait_for(lambda: len(follower.of_type("suggestion")) >= 2, 90, "two suggestion cards from instance A")
        assist_a.kill()
        killed_after = len(caller_finals)
        assert sim.is_alive() and killed_after < len(caller_turns), (
            "the call was over before the kill: nothing would test the takeover"
        )
        assist_b = start_service("assist", "assist-b", assist_env, ["--instance", "B"])
        sim.join(120)
        assert not sim.is_alive() and "error" not in box, f"simulator failed: {box.get('error')!r}"
        assert box["result"] == len(script.turns)
        assert len(caller_finals) == len(caller_turns)
        wait_for(lambda: follower.of_type("summary"), 90, "the call summary on the console")
        expected = set(caller_finals) - set(closings)
        assert len(expected) >= 8
        wait_for(lambda: set(cards(follower)) >= expected, 60, "a card for every caller segment")
        on_screen = cards(follower)
        suggestions = follower.of_type("suggestion")
    finally:
        follower.stop()
        console.close()

    # every final caller segment is on exactly one card; no card names anything else
    assert set(on_screen) == expected, f"lost: {expected - set(on_screen)}"
    twice = {s: n for s, n in on_screen.items() if n > 1}
    assert not twice, f"segments shown on more than one card: {twice}"
    assert len({s["suggestion_id"] for s in suggestions}) == len(suggestions)
    assert len(follower.of_type("summary")) == 1
    # what the screen shows is what assist published: each segment in exactly one published suggestion
    published = [
        e for e in read_topic(kafka_settings, ASSIST_SUGGESTIONS, {call_id}) if isinstance(e, Suggestion)
    ]
    by_event = {e.event_id: e for e in published}  # a re-publication keeps its event id
    on_kafka = Counter(s for e in by_event.values() for s in e.trigger_segment_ids)
    assert on_kafka == on_screen
    assert {e.suggestion_id for e in by_event.values()} == {s["suggestion_id"] for s in suggestions}
    # the takeover really happened inside the call: A and B both published part of the cards
    assert killed_after >= 2
    assert "suggestion published" in assist_a.log()
    assert "suggestion published" in assist_b.log(), "instance B published nothing: no takeover tested"


# --------------------------------------------------------------------------- 2. ASR worker killed

# Real recorded Korean speech (Zeroth-Korean, audio-dev), one read sentence per file, joined into
# one call with pauses between sentences. Each sentence becomes one or more finals.
AUDIO_FILES = ("104_003_0294", "104_003_0019", "104_003_0352", "104_003_0374")
PAUSE_S = 1.5
LEAD_S = 0.5  # play_audio_call's leading silence


@pytest.fixture(scope="module")
def joined_call_audio(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """One 16 kHz mono WAV of the four sentences with 1.5 s pauses, and each sentence's reference
    text and call-relative interval."""
    import soundfile as sf

    manifest = {
        json.loads(line)["id"]: json.loads(line)
        for line in (shared_dir / "audio-dev" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    parts: list[np.ndarray] = []
    spans: list[dict] = []
    t = LEAD_S
    for fid in AUDIO_FILES:
        row = manifest[f"zeroth_{fid}"]
        audio, rate = sf.read(str(shared_dir / "audio-dev" / row["audio"]), dtype="float32")
        assert rate == 16000 and audio.ndim == 1
        spans.append({"id": fid, "text": row["text"], "start": t, "end": t + len(audio) / rate})
        parts += [audio, np.zeros(int(PAUSE_S * rate), np.float32)]
        t += len(audio) / rate + PAUSE_S
    path = tmp_path_factory.mktemp("faults-audio") / "joined.wav"
    sf.write(str(path), np.concatenate(parts), 16000, subtype="PCM_16")
    return path, spans


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_asr_worker_killed_mid_utterance_call_resumes_without_gap_or_duplicate(
    start_service: ServiceStarter,
    kafka_settings: KafkaSettings,
    joined_call_audio: tuple[Path, list[dict]],
    unique: str,
) -> None:
    """Real speech streams through the gateway at real time. Once at least one final is out and
    the stream is between 40 % and 80 % into a sentence whose final is not out yet, the worker is
    SIGKILLed and a second worker (same consumer group) is started; it resumes from the committed
    offsets of ``call.audio``.

    Criterion (sound and timing-independent): the audio of the sentence in flight was never
    committed past its first unsettled frame, so the new worker re-reads it whole. Hence, after the
    takeover, (a) finals keep coming, from the second worker; (b) distinct finals do not overlap in
    time by more than 0.3 s (a re-decoded utterance published twice under different ids would); and
    (c) every sentence is covered by finals whose text matches its reference with CER <= 0.25.
    No audio may be lost at all (the tolerance is the recogniser's own error, not a gap): Whisper
    base reads these four recordings with CER 0.00-0.08, the killed sentence included. Losing the
    40 % or more of the sentence that preceded the kill — what a worker that committed every offset
    it had read would lose — gives CER >= 0.4 (0.45 measured with the commit cap switched off), and
    a sentence transcribed twice gives CER >= 1, so 0.25 separates them with room for a slip.
    """
    from asr.evaluate import cer

    wav, spans = joined_call_audio
    gateway, worker_a = start_service.together(
        Service.of("asr-gateway", env=asr_env(unique)),
        Service.of("asr-worker", name="asr-worker-a", env=asr_env(unique)),
    )
    call_id = f"fault-asr-{unique}"
    tail = TopicTail(kafka_settings, CALL_TRANSCRIPTS, call_id)
    tail.start()
    assert tail.ready.wait(30)
    # the worker owns every partition before the call starts (a join later would be a second handover)
    wait_for(lambda: "partitions assigned" in worker_a.log(), 60, "worker A to join its group")
    speed = 1.0
    t0 = time.monotonic()
    sim, box = in_thread(
        lambda: play_audio_call(
            f"ws://127.0.0.1:{gateway.port}",
            wav,
            call_id=call_id,
            counselor_id="counselor-asr",
            rate=16000,
            speed=speed,
            lead_silence_s=LEAD_S,
        )
    )

    def kill_moment() -> dict | None:
        """The sentence being streamed if now is a good moment to kill: a final is out, and the
        stream is 40-80 % into a sentence that no final has reached yet."""
        finals = [e for _, e in tail.finals()]
        if not finals or not sim.is_alive():
            return None
        pos = (time.monotonic() - t0) * speed
        for sp in spans:
            frac = (pos - sp["start"]) / (sp["end"] - sp["start"])
            if 0.4 <= frac <= 0.8 and not any(f.end_s > sp["start"] for f in finals):
                return {**sp, "at_s": pos}
        return None

    try:
        target = wait_for(kill_moment, 60, "a final, then a sentence in flight", interval=0.1)
        worker_a.kill()
        killed_at = time.monotonic()
        finals_before = {e.segment_id for _, e in tail.finals()}
        worker_b = start_service("asr-worker", "asr-worker-b", asr_env(unique))
        sim.join(120)
        assert not sim.is_alive() and "error" not in box, f"audio stream failed: {box.get('error')!r}"
        assert box["result"].error is None, box["result"].error

        def transcribed_to_the_end() -> bool:
            finals = [e for _, e in tail.finals()]
            status, body = worker_b.readiness()
            last = spans[-1]
            return (
                any(_overlap(f.start_s, f.end_s, last["start"], last["end"]) > 0 for f in finals)
                and status == 200
                and body.get("streams") == 0  # the call's stream is finished on the worker
            )

        wait_for(
            transcribed_to_the_end, 150, "the second worker to transcribe the call to its end", interval=0.5
        )
        arrivals = tail.finals()
    finally:
        tail.stop()

    assert box["result"].audio_s > 30
    # finals of one segment id published more than once (redelivery) are one final to consumers
    finals: dict[str, TranscriptSegment] = {}
    for _, seg in arrivals:
        finals.setdefault(seg.segment_id, seg)
    after = [seg for t, seg in arrivals if t > killed_at and seg.segment_id not in finals_before]
    assert after, "no final after the takeover"
    assert "final segment" in worker_b.log(), "the second worker published no final"
    ordered = sorted(finals.values(), key=lambda s: s.start_s)
    for prev, nxt in zip(ordered, ordered[1:], strict=False):
        ov = _overlap(prev.start_s, prev.end_s, nxt.start_s, nxt.end_s)
        assert ov <= 0.3, f"finals overlap by {ov:.2f} s: {prev.text!r} / {nxt.text!r}"
    report = []
    for sp in spans:
        mine = [f for f in ordered if _overlap(f.start_s, f.end_s, sp["start"], sp["end"]) > 0]
        text = " ".join(f.text for f in mine)
        err = cer([sp["text"]], [text]) if mine else 1.0
        report.append((sp["id"], round(err, 3), text))
    print(f"killed {target['at_s']:.1f} s into the call, in {target['id']}; CER per sentence: {report}")
    bad = [r for r in report if r[1] > 0.25]
    assert not bad, f"sentences with lost or duplicated audio (killed in {target['id']}): {report}"


# --------------------------------------------------------------------------- 3. broker outage


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[Any]:
    """A broker of this test alone (the session broker serves every other test), topics created."""
    from streaming.admin import create_topics
    from streaming.broker import LocalBroker

    b = LocalBroker(log_path=tmp_path / "tansu.log").start()
    create_topics(KafkaSettings(bootstrap=b.bootstrap))
    yield b
    with contextlib.suppress(ProcessLookupError):
        if b._proc is not None:
            os.kill(b._proc.pid, signal.SIGCONT)  # never leave it frozen
    b.stop()


OUTAGE_S = 20.0  # well past the consumers' 6 s session timeout: the groups must re-form afterwards


@pytest.mark.timeout(300)
def test_broker_outage_readiness_follows_the_broker_and_calls_flow_after_it(
    own_broker: Any,  # first: set up before the services, torn down after them
    start_service: ServiceStarter,
    e2e_env: dict[str, str],
    assist_env: dict[str, str],
    shared_dir: Path,
    unique: str,
) -> None:
    """Assist, console and ASR gateway run against a broker of their own. A scripted call (eval-dev
    DCALL01) is playing, with a card on the counselor's screen, when the broker process is frozen
    for 20 s (SIGSTOP: it still accepts TCP connections but answers nothing, as a hung broker does),
    then resumed (SIGCONT; nothing is lost). The call keeps sending transcripts the whole time.
    Checked:

    * every service's ``/readyz`` turns non-200 (naming the broker) within 30 s and stays so while
      the broker is frozen; the same processes keep running; the console's websocket status message
      says the recorder is not OK (the desk shows "실시간 수신 지연");
    * after SIGCONT every ``/readyz`` is 200 again within 60 s with the same PIDs (no restart), and
      the websocket status says OK again;
    * nothing sent around the outage is lost or doubled: every final caller segment of the call
      that spanned it has exactly one card, and the call has its summary; a scripted call started
      after recovery gets its cards and summary; a call through the ASR gateway after recovery is
      recorded (started, ended) by the console.

    A restart of this broker is not tested: Tansu keeps its log in memory here, so a restart wipes
    every topic, committed offset and producer id. Apache Kafka keeps them on disk across restarts;
    against a wiped Tansu, kafka-python's idempotent producers retry UNKNOWN_PRODUCER_ID for ever,
    so the services would need a restart (an operator re-provisioning topics cannot help them).
    """
    kafka = KafkaSettings(bootstrap=own_broker.bootstrap, max_poll_interval_ms=3000)
    env = {"DASAN_KAFKA_BOOTSTRAP": own_broker.bootstrap}
    services = start_service.together(
        Service.of("console", env={**console_env(unique), **env}),
        Service.of("assist", env={**assist_env, **env}),
        Service.of("asr-gateway", env={**asr_env(unique), **env}),
    )
    console_svc, assist, gateway = services
    pids = {s.name: s.pid for s in services}
    name, password = new_counselor(e2e_env, unique)
    console = Console(console_svc.port, name, password)
    producer = EventProducer(kafka)
    scripts = {s.call_id: s for s in load_script(shared_dir / "eval-dev" / "calls.jsonl")}
    followers: list[CallFollower] = []

    def play(script_id: str, call_id: str, speed: float, finals: list[str]) -> tuple[threading.Thread, dict]:
        return in_thread(
            lambda: play_scripted_call(
                producer,
                scripts[script_id],
                call_id=call_id,
                counselor_id=name,
                speed=speed,
                on_final=lambda seg: (
                    finals.append(seg.segment_id)
                    if seg.channel == Channel.caller and puts_card_up(seg)
                    else None
                ),
            )
        )

    try:
        # ---- a call under way: 142 s of conversation at 4x, so it runs on through the outage
        call1 = f"fault-outage-{unique}"
        caller1: list[str] = []
        sim1, box1 = play("DCALL01", call1, 4.0, caller1)
        f1 = wait_for(
            lambda: console.follow(call1) if console.events(call1) else None, 60, "call 1 on the console"
        )
        followers.append(f1)
        wait_for(lambda: cards(f1), 60, "the first card of call 1")
        assert all(s.readiness()[0] == 200 for s in services)
        assert sim1.is_alive(), "call 1 ended before the outage"

        # ---- the broker stops answering
        os.kill(own_broker._proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        down: dict[str, dict[str, Any]] = {}
        try:

            def all_not_ready() -> bool:
                for s in services:
                    code, body = s.readiness()
                    if code not in (0, 200):
                        down.setdefault(s.name, {"code": code, **body})
                return len(down) == len(services)

            wait_for(all_not_ready, 30, "every /readyz to report the broker away", interval=0.5)
            wait_for(
                lambda: any(m.get("recorder_ok") is False for m in f1.status_since(stopped_at)),
                30,
                "the console websocket to report the recorder down",
            )
            while time.monotonic() < stopped_at + OUTAGE_S:  # the outage lasts; readiness says so
                # (no answer within 3 s counts as not ready, as it does for a Kubernetes probe)
                assert all(s.readiness()[0] != 200 for s in services), "ready while the broker is frozen"
                time.sleep(1.0)
            assert all(s.alive() for s in services), "a service died while the broker was away"
        finally:
            os.kill(own_broker._proc.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        assert down["console"]["checks"]["broker"] == "unreachable"
        assert down["assist"]["broker"] == "unreachable"
        assert down["asr-gateway"]["broker"] is False

        # ---- back: ready again without a restart
        wait_for(lambda: all(s.readiness()[0] == 200 for s in services), 60, "every /readyz to be 200 again")
        assert {s.name: s.pid for s in services} == pids

        # ---- new calls flow end to end: a scripted call, and a call through the ASR gateway, started
        # as soon as every service is ready again (call 1 is still running: they overlap its end)
        call2 = f"fault-after-{unique}"
        caller2: list[str] = []
        sim2, box2 = play("DCALL05", call2, 10.0, caller2)
        call3 = f"fault-audio-{unique}"
        ingest, box3 = in_thread(
            lambda: play_audio_call(
                f"ws://127.0.0.1:{gateway.port}",
                shared_dir / "audio-dev" / "zeroth_korean" / "104_003_0294.flac",
                call_id=call3,
                counselor_id=name,
                rate=8000,
                speed=4.0,
            )
        )
        wait_for(
            lambda: any(m.get("recorder_ok") is True for m in f1.status_since(resumed_at)),
            30,
            "the console websocket to report the recorder up again",
        )
        f2 = wait_for(
            lambda: console.follow(call2) if console.events(call2) else None, 60, "call 2 on the console"
        )
        followers.append(f2)

        # ---- nothing sent around the outage was lost
        sim1.join(90)
        assert not sim1.is_alive() and "error" not in box1, f"call 1 failed: {box1.get('error')!r}"
        wait_for(lambda: f1.of_type("summary"), 90, "the summary of the call that spanned the outage")
        wait_for(lambda: set(cards(f1)) >= set(caller1), 60, "a card for every caller segment of call 1")

        sim2.join(60)
        ingest.join(60)
        assert "error" not in box2 and "error" not in box3, (box2.get("error"), box3.get("error"))
        assert box3["result"].error is None, box3["result"].error
        wait_for(lambda: f2.of_type("summary"), 90, "the summary of the call after recovery")
        wait_for(lambda: set(cards(f2)) >= set(caller2), 60, "the cards of the call after recovery")
        recorded3 = wait_for(
            lambda: (
                {"call_started", "call_ended"} <= (t := {e["event"]["type"] for e in console.events(call3)})
                and t
            ),
            60,
            "the gateway's call on the console",
        )
    finally:
        for f in followers:
            f.stop()
        console.close()
        producer.close()

    for f, caller in ((f1, caller1), (f2, caller2)):
        on_screen = cards(f)
        assert set(on_screen) == set(caller), f"{f.call_id}: lost {set(caller) - set(on_screen)}"
        assert all(n == 1 for n in on_screen.values()), f"{f.call_id}: shown twice: {on_screen}"
        assert len(f.of_type("summary")) == 1
    assert "call_started" in recorded3 and "call_ended" in recorded3
