"""What the assist service keeps per call, and the requests and plans its tracker hands out (plain
data; the rules that fill them are :mod:`assist.tracker`'s)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streaming.events import CallEnded, Channel

from .assistant import SuggestRequest
from .summary import SummaryParts, Turn

NOW = -math.inf  # "due at once" (a replayed end, a segment with no debounce)
NO_TRIGGER_S = -1e9  # ``last_trigger_end_s`` of a call where no caller segment has triggered yet


class ShownKey(NamedTuple):
    """What a suggestion puts on screen, for the no-repeat rule (:func:`shown_key`)."""

    top: frozenset[str]  # its top three articles, each in its version
    primary: str  # the article the card leads with, in its version ("" when it abstains)
    reads: str  # the primary article with the draft's sentences: what the counselor reads of it


def shown_key(passages: Sequence[Any], draft: Any) -> ShownKey:
    """What a suggestion puts on screen, for the no-repeat rule: its top three articles, each in its
    version (an amended article, after a knowledge-base switch, is news), the article it leads with,
    and what the counselor reads of it: the primary article with the draft's sentences (the related
    articles are folded)."""
    if draft.abstained:
        return ShownKey(frozenset(), "", "")
    top = frozenset(f"{p.doc_id}@{p.effective_date}" for p in passages[:3])
    if not passages:
        return ShownKey(top, "", "")
    p0 = passages[0]
    primary = f"{p0.doc_id}@{p0.effective_date}"
    return ShownKey(top, primary, primary + "|" + " ".join(s.text for s in draft.sentences))


def is_repeat(key: ShownKey, recent: Sequence[ShownKey]) -> bool:
    """Whether a suggestion shows what is already there: the same three articles *led by the same
    article* as one of ``recent`` (oldest first), or the newest card's primary article saying the same
    sentences (only the folded related articles differ; an older card's twin is news again once
    another card is on top).

    The same three articles led by another one are news: a follow-up that asks another provision of
    the same law ("그럼 세율은요?") often retrieves the card it follows reordered, and its new lead is
    the answer (session 22, with the follow-up trigger in the tracker: live top card 0.473 → 0.493
    in cross-validation; docs/knowledge.md)."""
    if any(key.top == r.top and key.primary == r.primary for r in recent):
        return True
    return bool(recent) and bool(key.reads) and key.reads == recent[-1].reads


@dataclass(frozen=True)
class Card:
    trigger: str
    doc_ids: tuple[str, ...]


def card_of(trigger_segment_ids: Sequence[str], passages: Sequence[Any], abstained: bool) -> Card | None:
    if abstained or not passages or not trigger_segment_ids:
        return None
    return Card(trigger_segment_ids[-1], tuple(dict.fromkeys(p.doc_id for p in passages[:3])))


@dataclass
class CallState:
    call_id: str
    partition: int | None = None
    counselor_id: str | None = None
    segments: dict[str, tuple[Channel, str, float, float]] = field(default_factory=dict)  # id → masked
    order: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    due_at: float = NOW
    covered: set[str] = field(default_factory=set)
    shown: deque[ShownKey] = field(default_factory=lambda: deque(maxlen=8))
    # the cards put on screen (not abstaining): (trigger segment id, their articles, primary first);
    # the summary cites from these, where the counselor's answer confirms them
    cards: list[Card] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    last_trigger_end_s: float = NO_TRIGGER_S
    ended: CallEnded | None = None
    summary_at: float = NOW  # with ``ended``: when the summary may be written
    summary_done: bool = False
    last_event_at: float = 0.0
    suggest_failures: int = 0
    summary_failures: int = 0
    first_segment_at: dict[str, float] = field(default_factory=dict)
    mask_ms: dict[str, float] = field(default_factory=dict)
    queue_ms: dict[str, float] = field(default_factory=dict)

    def caller_texts(self, upto: str | None = None) -> list[str]:
        out = []
        for sid in self.order:
            ch, text, _s, _e = self.segments[sid]
            if ch == Channel.caller:
                out.append(text)
            if sid == upto:
                break
        return out

    def conversation(self, upto: str | None = None) -> list[tuple[str, str]]:
        """Both channels up to a segment, masked: ("caller" | "counselor", text)."""
        out = []
        for sid in self.order:
            ch, text, _s, _e = self.segments[sid]
            out.append(("caller" if ch == Channel.caller else "counselor", text))
            if sid == upto:
                break
        return out

    def turns(self) -> list[Turn]:
        return [Turn(self.segments[s][0], self.segments[s][1]) for s in self.order]

    def card_positions(self) -> list[tuple[int, tuple[str, ...]]]:
        """The cards shown, each with the position of its trigger among :meth:`turns`."""
        pos = {sid: i for i, sid in enumerate(self.order)}
        return [(pos[c.trigger], c.doc_ids) for c in self.cards if c.trigger in pos]


@dataclass(frozen=True)
class SummaryRequest:
    call_id: str
    turns: list[Turn]
    # (position of the trigger in ``turns``, the card's articles) of every card shown in the call
    cards: list[tuple[int, tuple[str, ...]]] | None = None


@dataclass(frozen=True)
class SummaryResult:
    request: SummaryRequest
    parts: SummaryParts
    latency_ms: float


@dataclass(frozen=True)
class Due:
    """What one tick should do. ``suggest``: one batch for one retrieval pass, oldest due first;
    ``alone``: requests of calls whose last attempt raised, each to be run on its own; ``summarize``:
    calls to summarise, in order, for as long as the tick has ``summary_budget_s`` left (0: one
    summary only, because caller finals are waiting beyond this batch)."""

    suggest: list[SuggestRequest] = field(default_factory=list)
    alone: list[SuggestRequest] = field(default_factory=list)
    summarize: list[SummaryRequest] = field(default_factory=list)
    summary_budget_s: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.suggest or self.alone or self.summarize)
