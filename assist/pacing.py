"""How much work one tick of the assist's consumer loop may take, from what this machine measured.

The loop must poll again within the consumer's ``max.poll.interval.ms``, or the group counts the
member as stuck: it is dropped, its offsets fail to commit, the partitions are rebalanced and every
open call is rebuilt. While a group rebalances, a member that does not poll within the interval
misses the join and causes another rebalance: under load, long ticks turn one hand-over into many.
A tick runs between two polls: one batch of suggestions, then summaries while time is left. A fixed
batch size (``batch_max``) that fits on a fast core does not fit on a slow one: on a 2-core
AVX2-only CPU a batch of cards took ~10 s against the 6 s development interval (session 28).

:class:`BatchPacer` caps a tick's batch by time instead of by count alone: the next batch holds the
last batch's size scaled by how far it was from the budget (``share`` of the interval),
``n × budget / seconds``. A batch costs a fixed part (the passes every batch makes, whatever its
size) and a part per request; under that cost the rule never scales a batch past the budget when it
grows, overshoots by less than the fixed part when it shrinks, and converges to the largest batch
that fits. Two rules tried first in session 29 kept batches too small on a loaded core: an estimate
that took a slower batch whole and a quicker one by 0.3 (biased towards the slowest batches), and a
least-squares line over batches of nearly one size (noise, most often no slope). The first batch,
before anything was measured, is small (:data:`FIRST_BATCH`). Pure logic: the service measures and
tells it; no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_BATCH = 4  # requests in the first batch, before any cost was measured on this machine


@dataclass
class BatchPacer:
    """The largest suggestion batch that fits ``share`` of the poll interval, by measured cost.

    >>> p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    >>> p.limit()                    # nothing measured yet
    4
    >>> p.observe(4, 1.5)            # 4 took 1.5 s: 8 take at most 3 s, the budget
    >>> p.limit()
    8
    """

    interval_s: float
    share: float
    batch_max: int
    first: int = FIRST_BATCH
    last: tuple[int, float] | None = field(default=None, init=False)  # the last batch: size, seconds

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or not 0 < self.share <= 1:
            raise ValueError(f"poll interval {self.interval_s} s and share {self.share} must be positive")
        if self.batch_max < 1 or self.first < 1:
            raise ValueError("batch sizes start at 1")

    @property
    def budget_s(self) -> float:
        """Seconds one tick's batch may take: ``share`` of the poll interval."""
        return self.interval_s * self.share

    @property
    def per_request_s(self) -> float | None:
        """The last batch's seconds per request (its fixed part included); None before any."""
        return None if self.last is None else self.last[1] / self.last[0]

    def limit(self) -> int:
        """Most requests the next batch may hold: never 0 (one request is always worked on), never
        more than ``batch_max``."""
        if self.last is None:
            return min(self.batch_max, self.first)
        n, seconds = self.last
        if seconds <= 0:
            return self.batch_max
        return max(1, min(self.batch_max, round(n * self.budget_s / seconds)))

    def observe(self, n: int, seconds: float) -> None:
        """A batch of ``n`` requests took ``seconds``."""
        if n > 0 and seconds >= 0:
            self.last = (n, seconds)
