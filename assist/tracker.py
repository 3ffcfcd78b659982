"""The assist service's per-call rules: what to suggest and summarise, and when. No Kafka, no clock
reads, no threads: time comes in as an argument, so every rule here is tested with a scripted clock.
(One module of ~400 lines on purpose: the rules read each other's state — triggers, debounce,
no-repeat, cards shown, summary timing, takeover rebuild — and split apart they were harder to follow.)

Per call (keyed by call id; :class:`assist.call_state.CallState`) it keeps the masked final segments of both channels, the caller segments
waiting for a suggestion, the segments already covered by a published suggestion, what is on screen,
and the keywords shown.

- Only **final caller** segments that add evidence (content nouns) trigger; partials never do, nor
  a closing (thanks, "일단 의견서부터 내 볼게요"; :func:`assist.dialogue.is_closing`). A **follow-up
  question** with no noun of its own ("안 하면요?") triggers once the call had a trigger
  (``follow_up_questions``): it asks within the call's topic.
- **Debounce** on the audio clock: a final caller segment that starts within ``debounce_ms`` of the
  previous trigger's end waits that long, so a sentence the recogniser cut in two yields one
  suggestion with both segment ids. Segments of several calls due at the same moment are retrieved
  in one batch.
- **No repeats**: a suggestion that shows what is already there — the same three articles led by
  the same one as one of the last ``repeat_window`` shown, or the newest card's primary article with
  the same draft sentences — is not published again (its keywords still are, if they changed). The
  same three articles led by another one are a new card: the follow-up asked another provision.
- **Summaries** wait ``summary_grace_ms`` after ``CallEnded`` (the last transcripts travel on another
  topic and may arrive just after the end), and until no caller final of the call is waiting.
- **Idle calls** (no event for ``call_idle_timeout_s``) are forgotten.
- **Failures are per call**: a call whose suggestion or summary raised is retried on its own after
  ``RETRY_AFTER_S`` (so it cannot fail the batch of the others again) and dropped after
  ``max_failures`` attempts.
- **Takeover**: :meth:`CallTracker.rebuild` replays the history of the partitions a member took over
  (lifecycle, transcripts, and what was already published), so segments already covered are never
  suggested again and summaries already written are not written twice. The replay masks every
  segment again (~20 ms each on a slow core: 50 calls took ~4 s), so it runs call by call within a
  time budget (:meth:`CallTracker.continue_rebuild`, one step a tick): a call whose history waits is
  neither suggested nor summarised, and its live events wait behind its history. Suggestion and event ids are
  derived from the call id and the first trigger segment id, so even a re-publication carries the
  same ``event_id`` and is dropped by consumers.

One tick of the service::

    plan = tracker.due(now)                               # forgets idle calls, picks what is due
    results = assistant.suggest_many(plan.suggest)        # (+ each of plan.alone on its own)
    events = tracker.events_for(result)                   # for each result
    ... publish events ...
    tracker.record(result, events)                        # what is now covered / on screen / done
    tracker.failed(request, now)                          # for a request that raised
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from streaming.events import (
    CallEnded,
    CallStarted,
    CallSummary,
    Channel,
    Event,
    KeywordsUpdated,
    Provenance,
    Suggestion,
    TranscriptSegment,
)
from streaming.privacy import mask_text

from .assistant import SuggestRequest, SuggestResult, district_of
from .call_state import (
    NO_TRIGGER_S,
    NOW,
    CallState,
    Due,
    SummaryRequest,
    SummaryResult,
    card_of,
    is_repeat,
    shown_key,
)
from .dialogue import is_closing, is_question
from .settings import AssistSettings
from .summary import SummaryParts

# Summaries per tick after the suggestion batch, at most: cards never wait longer on a wave of
# hang-ups. The service lowers it to its share of max.poll.interval.ms where that is shorter
# (assist.pacing): the loop must poll again within the interval or the group rebalances.
TICK_BUDGET_S = 1.5
# A call whose suggestion or summary raised is tried again this much later, on its own.
RETRY_AFTER_S = 1.0


def stable_id(*parts: str, n: int = 32) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


def suggestion_id_for(call_id: str, first_segment_id: str) -> str:
    return "sg-" + stable_id(call_id, first_segment_id, n=24)


def namespaced(ev: Event, namespace: str, prefix: str) -> Event:
    """``ev`` with ids of its own for a replay or shadow run (``namespace``): never equal to a production
    event's (consumers dedupe by ``event_id``), nor to another run's; still stable within the run."""
    update: dict[str, str] = {"event_id": stable_id(namespace, ev.event_id)}
    if isinstance(ev, Suggestion):
        update["suggestion_id"] = prefix + stable_id(namespace, ev.suggestion_id, n=24)
    elif isinstance(ev, CallSummary):
        update["summary_id"] = prefix + stable_id(namespace, ev.summary_id, n=24)
    return ev.model_copy(update=update)


def summary_event(
    call_id: str, parts: SummaryParts, latency_ms: float = 0.0, provenance: Provenance | None = None
) -> CallSummary:
    """The ``CallSummary`` of a call (one per call: its ids derive from the call id alone)."""
    return CallSummary(
        event_id=stable_id(call_id, "summary"),
        call_id=call_id,
        summary_id="sm-" + stable_id(call_id, "summary", n=24),
        category=parts.category,
        call_reason=parts.call_reason,
        key_facts=parts.key_facts,
        counselor_answers=parts.counselor_answers,
        actions=parts.actions,
        regulations_cited=parts.regulations_cited,
        entities=parts.entities,
        keywords=parts.keywords,
        generator=parts.generator,
        latency_ms=round(latency_ms, 2),
        provenance=provenance,
    )


@dataclass
class _Backlog:
    """A taken-over call's events still to be replayed: its history (lifecycle, then transcripts in
    the order produced), what was published of it, and the live events that arrived meanwhile."""

    history: list[tuple[int | None, Event]] = field(default_factory=list)
    published: list[Event] = field(default_factory=list)
    live: list[tuple[int | None, Event, float | None]] = field(default_factory=list)

    @property
    def partition(self) -> int | None:
        return next((p for p, _ in self.history if p is not None), None)


class CallTracker:
    """The calls one service instance follows.

    ``evidence(text)``: the content nouns of a masked turn (a turn with fewer than
    ``min_evidence_terms`` does not trigger). ``mask``: the masking contract applied to every final
    segment before it is kept. ``timer``: only measures stage latency for the published events
    (masking, the request's start); what happens when depends on the ``now`` arguments alone.
    ``provenance``: stamped on every suggestion and summary (how they were made).
    """

    def __init__(
        self,
        settings: AssistSettings,
        evidence: Callable[[str], Sequence[str]],
        *,
        mask: Callable[[str], str] = mask_text,
        timer: Callable[[], float] = time.perf_counter,
        remember_finished: int = 10_000,
        provenance: Provenance | None = None,
    ) -> None:
        self.settings = settings
        self.provenance = provenance
        self.evidence = evidence
        self.mask = mask
        self.timer = timer
        self.calls: dict[str, CallState] = {}
        self.finished: deque[str] = deque(maxlen=remember_finished)
        self._finished_set: set[str] = set()
        # taken-over calls whose history is not replayed yet: their events in replay order, then the
        # live events that arrived meanwhile (:meth:`rebuild`, :meth:`continue_rebuild`)
        self._waiting: dict[str, _Backlog] = {}

    # ------------------------------------------------------------------ input
    def apply(
        self, event: Event, now: float, *, partition: int | None = None, queue_ms: float | None = None
    ) -> None:
        """One event as it arrives. ``queue_ms``: how long it waited on Kafka (reported latency). The
        event of a call whose history is still to be replayed waits behind it."""
        waiting = self._waiting.get(event.call_id)
        if waiting is not None:
            waiting.live.append((partition, event, queue_ms))
            return
        self._apply(event, now, partition, queue_ms, replay=False)

    def _apply(
        self, event: Event, now: float, partition: int | None, queue_ms: float | None, replay: bool
    ) -> None:
        cid = event.call_id
        if cid in self._finished_set:
            return
        st = self.calls.get(cid)
        if st is None:
            st = self.calls[cid] = CallState(cid, partition)
        st.last_event_at = now
        if isinstance(event, CallStarted):
            st.counselor_id = event.counselor_id
        elif isinstance(event, CallEnded):
            st.ended = event
            st.due_at = NOW
            # call.events and call.transcripts are separate topics: the last transcripts may arrive
            # just after the end, so the summary waits a short grace period (not on replay)
            st.summary_at = NOW if replay else now + self.settings.summary_grace_ms / 1000
        elif isinstance(event, TranscriptSegment):
            self._segment(st, event, now, queue_ms, replay)
        elif isinstance(event, Suggestion | KeywordsUpdated | CallSummary):
            # what the cards role published (the summaries role reads assist.suggestions), or, on a
            # rebuild, what this member's predecessor published
            self._seen_published(st, event)

    def _segment(
        self, st: CallState, seg: TranscriptSegment, now: float, queue_ms: float | None, replay: bool
    ) -> None:
        if not seg.is_final or seg.segment_id in st.segments:
            return
        t0 = self.timer()
        masked = self.mask(seg.text)
        mask_ms = (self.timer() - t0) * 1000
        st.segments[seg.segment_id] = (seg.channel, masked, seg.start_s, seg.end_s)
        st.order.append(seg.segment_id)
        if seg.channel != Channel.caller:
            return
        if not masked.strip():
            return
        # its card came first (the summaries role reads two topics; a rebuild knows what was published
        # before it replays the transcripts): it never triggers, so its nouns are not analysed
        if seg.segment_id in st.covered:
            return
        if len(self.evidence(masked)) < self.settings.min_evidence_terms and not self._follow_up(st, masked):
            return
        if self.settings.skip_closings and is_closing(masked):  # thanks, "그렇게 할게요": no new card
            return
        st.first_segment_at.setdefault(seg.segment_id, now)
        st.mask_ms[seg.segment_id] = mask_ms
        if queue_ms is not None and not replay:
            st.queue_ms[seg.segment_id] = queue_ms
        close = (seg.start_s - st.last_trigger_end_s) * 1000 < self.settings.debounce_ms
        if not st.pending:
            st.due_at = now + self.settings.debounce_ms / 1000 if (close and not replay) else NOW
        st.pending.append(seg.segment_id)
        st.last_trigger_end_s = seg.end_s

    def _follow_up(self, st: CallState, masked: str) -> bool:
        """A question with no content noun of its own, in a call that already had a trigger: it asks
        within the call's topic ("안 하면요?"); the query reads the turns before it."""
        return (
            self.settings.follow_up_questions and st.last_trigger_end_s > NO_TRIGGER_S and is_question(masked)
        )

    # ------------------------------------------------------------------ what is due
    def due(self, now: float, limit: int | None = None) -> Due:
        """Forget idle calls, then pick what is due: suggestions of every call whose debounce ran out
        (one batch, oldest first, at most ``batch_max``, and at most ``limit`` when the caller paces
        batches by their measured cost: :class:`assist.pacing.BatchPacer`), and summaries of ended
        calls past their grace with no caller final waiting."""
        self.forget_idle(now)
        s = self.settings
        most = s.batch_max if limit is None else max(1, min(limit, s.batch_max))
        # a call whose history is still to be replayed is not due: what it published is not known yet
        calls = [st for st in self.calls.values() if st.call_id not in self._waiting]
        # One batch per tick, oldest first: the consumer polls between batches, so a backlog never
        # holds the poll loop past max.poll.interval.ms (which would cost a rebalance and a rebuild).
        picked = sorted(
            (st for st in calls if s.cards and st.pending and st.due_at <= now),
            key=lambda st: st.due_at,
        )[:most]
        if not s.summaries:
            # the cards role: a call is done once it ended, its grace ran out and no final waits
            for st in [st for st in calls if self._closed(st, now)]:
                self._finish(st.call_id)
            ended = []
        else:
            ended = [
                SummaryRequest(st.call_id, st.turns(), st.card_positions())
                for st in calls
                if self._closed(st, now) and not st.summary_done
            ]
        if not s.cards:  # the summaries role: nothing of its own to wait for
            return Due(summarize=ended, summary_budget_s=TICK_BUDGET_S)
        # Summaries share the loop's time budget: when many calls hang up together the rest wait for
        # the next tick (a few hundred ms later) rather than hold the poll loop past its interval.
        # A summary may take "a few seconds", a suggestion 500 ms: while any caller final is still
        # waiting after this batch (debounce, or beyond it), a tick writes one summary only (each is
        # an encoder pass over the call's sentences).
        in_batch = {st.call_id for st in picked}
        waiting = any(st.pending for st in calls if st.call_id not in in_batch)
        return Due(
            suggest=[self._request(st, now) for st in picked if not st.suggest_failures],
            alone=[self._request(st, now) for st in picked if st.suggest_failures],
            summarize=ended,
            summary_budget_s=0.0 if waiting else TICK_BUDGET_S,
        )

    def _closed(self, st: CallState, now: float) -> bool:
        """The call ended, its grace ran out and no caller final waits for a card. In the summaries
        role, "waits" means its card has not been seen on assist.suggestions yet: for at most
        ``summary_cards_wait_ms`` (a card the cards role did not repeat is never published)."""
        if st.ended is None or st.summary_at > now:
            return False
        if not st.pending:
            return True
        return not self.settings.cards and now >= st.summary_at + self.settings.summary_cards_wait_ms / 1000

    def _request(self, st: CallState, now: float) -> SuggestRequest:
        trig = list(st.pending)
        turns = st.caller_texts(upto=trig[-1])
        first_seen = min(st.first_segment_at.get(s, now) for s in trig)
        due_since = max(first_seen, st.due_at)  # due_at is NOW (-inf) unless the debounce held it
        return SuggestRequest(
            st.call_id,
            turns,
            trig,
            district_of(turns),
            sum(st.mask_ms.get(s, 0.0) for s in trig),
            max((st.queue_ms.get(s, 0.0) for s in trig), default=0.0),
            # total latency counts from the segment's arrival, debounce included
            started=self.timer() - (now - first_seen),
            conversation=st.conversation(upto=trig[-1]),
            ready=self.timer() - (now - due_since),
        )

    def forget_idle(self, now: float) -> list[str]:
        """Forget calls with no event for ``call_idle_timeout_s`` (a lost CallEnded); their ids."""
        stale = [
            c
            for c, st in self.calls.items()
            if now - st.last_event_at > self.settings.call_idle_timeout_s and c not in self._waiting
        ]
        for c in stale:
            self._finish(c)
        return stale

    # ------------------------------------------------------------------ output
    def events_for(self, result: SuggestResult | SummaryResult) -> list[Event]:
        """The events to publish for a result (nothing is changed until :meth:`record`)."""
        if isinstance(result, SummaryResult):
            return [summary_event(result.request.call_id, result.parts, result.latency_ms, self.provenance)]
        cid = result.request.call_id
        st = self.calls.get(cid) or CallState(cid)
        trig = result.request.trigger_segment_ids
        out: list[Event] = []
        if result.keywords and result.keywords != st.keywords:
            out.append(
                KeywordsUpdated(
                    event_id=stable_id(cid, "kw", *trig),
                    call_id=cid,
                    keywords=result.keywords[:12],
                    trigger_segment_ids=trig,
                )
            )
        if self.is_repeat(result):
            return out
        out.append(
            Suggestion(
                event_id=stable_id(cid, "suggestion", trig[0]),
                call_id=cid,
                suggestion_id=suggestion_id_for(cid, trig[0]),
                trigger_segment_ids=trig,
                query=result.query[:4000],
                keywords=result.keywords[:12],
                passages=result.passages,
                draft=result.draft,
                latency=result.latency,
                provenance=self.provenance,
                shed=result.request.caller_only,
            )
        )
        return out

    def is_repeat(self, result: SuggestResult) -> bool:
        """Whether the result shows what one of the last ``repeat_window`` suggestions showed."""
        st = self.calls.get(result.request.call_id)
        if st is None or not self.settings.repeat_window:
            return False
        recent = list(st.shown)[-self.settings.repeat_window :]
        return is_repeat(shown_key(result.passages, result.draft), recent)

    def record(self, result: SuggestResult | SummaryResult, events: Sequence[Event]) -> None:
        """``events`` (from :meth:`events_for`) were published: the trigger segments are covered,
        keywords and suggestion are on screen; a summary finishes its call."""
        cid = result.request.call_id
        if isinstance(result, SummaryResult):
            st = self.calls.get(cid)
            if st is not None:
                st.summary_done = True
            self._finish(cid)
            return
        st = self.calls.get(cid)
        if st is None:
            return
        for ev in events:
            if isinstance(ev, KeywordsUpdated):
                st.keywords = list(result.keywords)
            elif isinstance(ev, Suggestion):
                st.shown.append(shown_key(ev.passages, ev.draft))
                card = card_of(ev.trigger_segment_ids, ev.passages, ev.draft.abstained)
                if card is not None:
                    st.cards.append(card)
        st.suggest_failures = 0
        self._done_with(st, result.request.trigger_segment_ids, covered=True)

    def _done_with(self, st: CallState, trig: Sequence[str], covered: bool) -> None:
        if covered:
            st.covered.update(trig)
        st.pending = [s for s in st.pending if s not in trig]
        for s in trig:
            st.first_segment_at.pop(s, None)
            st.mask_ms.pop(s, None)
            st.queue_ms.pop(s, None)

    def failed(self, request: SuggestRequest | SummaryRequest, now: float) -> bool:
        """A request raised. It is tried again on its own after ``RETRY_AFTER_S``; after
        ``max_failures`` attempts it is dropped (the trigger segments leave the queue uncovered; an
        ended call is forgotten without a summary). Returns True when dropped."""
        st = self.calls.get(request.call_id)
        if st is None:
            return True
        limit = self.settings.max_failures
        if isinstance(request, SummaryRequest):
            st.summary_failures += 1
            if st.summary_failures >= limit:
                self._finish(st.call_id)
                return True
            st.summary_at = now + RETRY_AFTER_S
            return False
        st.suggest_failures += 1
        if st.suggest_failures >= limit:
            st.suggest_failures = 0
            self._done_with(st, request.trigger_segment_ids, covered=False)
            return True
        st.due_at = now + RETRY_AFTER_S
        return False

    # ------------------------------------------------------------------ membership
    def rebuild(
        self, events: Iterable[tuple[int | None, Event]], now: float, budget_s: float | None = None
    ) -> int:
        """Rebuild from the history of taken-over partitions: ``(partition, event)`` of the input topics
        and of the published suggestions and summaries, in the order read. Per call: lifecycle first,
        then transcripts in the order produced, then what was already published.

        The calls are replayed one after another while ``budget_s`` lasts (measured with ``timer``;
        None: all of them now); the rest wait for :meth:`continue_rebuild`. How many calls wait."""
        lifecycle: list[tuple[int | None, Event]] = []
        transcripts: list[tuple[int | None, TranscriptSegment]] = []
        published: list[Event] = []
        for part, ev in events:
            if isinstance(ev, TranscriptSegment):
                transcripts.append((part, ev))
            elif isinstance(ev, Suggestion | KeywordsUpdated | CallSummary):
                published.append(ev)
            else:
                lifecycle.append((part, ev))
        transcripts.sort(key=lambda pe: pe[1].produced_at)
        for part, ev in [*lifecycle, *transcripts]:
            if ev.call_id not in self._finished_set:
                self._waiting.setdefault(ev.call_id, _Backlog()).history.append((part, ev))
        for ev in published:  # a call with no lifecycle or transcript left in the read is not followed
            waiting = self._waiting.get(ev.call_id)
            if waiting is not None:
                waiting.published.append(ev)
        return self.continue_rebuild(now, budget_s)

    @property
    def replaying(self) -> int:
        """Taken-over calls whose history is not replayed yet."""
        return len(self._waiting)

    def continue_rebuild(self, now: float, budget_s: float | None = None) -> int:
        """Replay the waiting calls, oldest read first, while ``budget_s`` lasts (at least one when it
        is positive; None: all); how many still wait. A call is replayed whole: its history, what was
        published of it, then the live events that arrived meanwhile, in their order."""
        t0 = self.timer()
        replayed = 0
        while self._waiting and (
            budget_s is None or (budget_s > 0 and (not replayed or self.timer() - t0 < budget_s))
        ):
            cid = next(iter(self._waiting))
            self._replay(cid, self._waiting.pop(cid), now)
            replayed += 1
        return len(self._waiting)

    def _replay(self, cid: str, waiting: _Backlog, now: float) -> None:
        if cid in self._finished_set:
            return
        covered = {
            s
            for ev in waiting.published
            if isinstance(ev, Suggestion | KeywordsUpdated)
            for s in ev.trigger_segment_ids
        }
        if covered:  # known before the transcripts: a covered segment's nouns are not analysed
            st = self.calls.get(cid)
            if st is None:
                st = self.calls[cid] = CallState(cid, waiting.partition)
            st.covered.update(covered)
        for part, ev in waiting.history:
            self._apply(ev, now, part, None, replay=True)
        st = self.calls.get(cid)
        if st is not None:
            for ev in waiting.published:
                self._seen_published(st, ev)
        st = self.calls.get(cid)
        if st is not None and st.ended and st.summary_done:
            self._finish(cid)
        elif st is not None and st.pending:
            st.due_at = NOW
        for part, ev, queue_ms in waiting.live:
            self._apply(ev, now, part, queue_ms, replay=False)

    def _seen_published(self, st: CallState, ev: Event) -> None:
        """A published event of the call: its trigger segments are covered, its card on screen, its
        summary written (a call summarised and ended is finished)."""
        if isinstance(ev, Suggestion):
            st.shown.append(shown_key(ev.passages, ev.draft))
            card = card_of(ev.trigger_segment_ids, ev.passages, ev.draft.abstained)
            if card is not None and card not in st.cards:
                st.cards.append(card)
        elif isinstance(ev, KeywordsUpdated):
            st.keywords = list(ev.keywords)
        elif isinstance(ev, CallSummary):
            st.summary_done = True
            if st.ended is not None:
                self._finish(st.call_id)
            return
        if isinstance(ev, Suggestion | KeywordsUpdated):  # both are published only with the segments covered
            st.covered.update(ev.trigger_segment_ids)
            st.pending = [s for s in st.pending if s not in st.covered]

    def forget_partitions(self, partitions: set[int]) -> list[str]:
        """Drop the calls of partitions handed to another member (it rebuilds them), those whose
        history was still to be replayed included; their ids."""
        gone = [cid for cid, st in self.calls.items() if st.partition is None or st.partition in partitions]
        for cid in gone:
            del self.calls[cid]
        unreplayed = [
            cid for cid, w in self._waiting.items() if w.partition is None or w.partition in partitions
        ]
        for cid in unreplayed:
            del self._waiting[cid]
        return gone + [cid for cid in unreplayed if cid not in gone]

    def _finish(self, call_id: str) -> None:
        self.calls.pop(call_id, None)
        if call_id not in self._finished_set:
            if len(self.finished) == self.finished.maxlen:
                self._finished_set.discard(self.finished[0])
            self.finished.append(call_id)
            self._finished_set.add(call_id)

    def is_finished(self, call_id: str) -> bool:
        return call_id in self._finished_set
