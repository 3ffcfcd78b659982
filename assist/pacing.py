"""How much work one tick of the assist's consumer loop may take, from what this machine measured.

The loop must poll again within the consumer's ``max.poll.interval.ms``, or the group counts the
member as stuck: it is dropped, its offsets fail to commit, the partitions are rebalanced and every
open call is rebuilt from the topics. A tick runs between two polls: one batch of suggestions, then
summaries while time is left. A fixed batch size (``batch_max``) that fits on a fast core does not
fit on a slow one: on a 2-core AVX2-only CPU a batch of cards took ~10 s against the 6 s
development interval (session 28: "Consumer poll timeout has expired", "commit failed").

:class:`BatchPacer` caps a tick's batch by time instead of by count alone. It learns what one
request costs on this machine under this load (each batch's seconds over its size: a slowdown
counts at once, a speed-up is trusted gradually) and lets a batch take at most ``share`` of the
interval. The first batch, before anything was measured, is small (:data:`FIRST_BATCH`). Pure
logic: the service measures and tells it; no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_BATCH = 4  # requests in the first batch, before any cost was measured on this machine
SMOOTHING = 0.3  # weight of a new, lower cost per request (a higher one is taken whole)


@dataclass
class BatchPacer:
    """The largest suggestion batch that fits ``share`` of the poll interval, by measured cost.

    >>> p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    >>> p.limit()                    # nothing measured yet
    4
    >>> p.observe(4, 2.0)            # 0.5 s a request on this machine: 1.5 s holds 3
    >>> p.limit()
    3
    """

    interval_s: float
    share: float
    batch_max: int
    first: int = FIRST_BATCH
    smoothing: float = SMOOTHING
    per_request_s: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or not 0 < self.share <= 1:
            raise ValueError(f"poll interval {self.interval_s} s and share {self.share} must be positive")
        if self.batch_max < 1 or self.first < 1:
            raise ValueError("batch sizes start at 1")

    @property
    def budget_s(self) -> float:
        """Seconds one tick's batch may take: ``share`` of the poll interval."""
        return self.interval_s * self.share

    def limit(self) -> int:
        """Most requests the next batch may hold: never 0 (one request is always worked on), never
        more than ``batch_max``."""
        if self.per_request_s is None:
            return min(self.batch_max, self.first)
        if self.per_request_s <= 0:
            return self.batch_max
        return max(1, min(self.batch_max, int(self.budget_s / self.per_request_s)))

    def observe(self, n: int, seconds: float) -> None:
        """A batch of ``n`` requests took ``seconds``. Its cost per request replaces the estimate
        when higher (the machine got slower: the next batch shrinks at once) and moves it by
        ``smoothing`` when lower (one quick batch does not grow the next one to ``batch_max``)."""
        if n <= 0 or seconds < 0:
            return
        cost = seconds / n
        prev = self.per_request_s
        if prev is None or cost >= prev:
            self.per_request_s = cost
        else:
            self.per_request_s = prev + self.smoothing * (cost - prev)
