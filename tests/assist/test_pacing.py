"""The pacer that sizes a tick's suggestion batch by what a request costs on this machine
(assist/pacing.py): pure arithmetic on reported timings, no clock."""

from __future__ import annotations

import pytest

from assist.pacing import FIRST_BATCH, BatchPacer


def test_the_first_batch_is_small_until_a_cost_was_measured() -> None:
    p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    assert p.budget_s == pytest.approx(1.5)
    assert p.limit() == FIRST_BATCH
    assert BatchPacer(interval_s=6.0, share=0.25, batch_max=2).limit() == 2  # never above batch_max


def test_a_slow_core_gets_batches_that_fit_the_share_of_the_poll_interval() -> None:
    # session 28's AVX2-only core: 32 cards in ~9.7 s against the 6 s development interval
    p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    p.observe(32, 9.7)
    assert p.limit() == 4  # 4 x 0.30 s = 1.2 s <= 1.5 s; 5 would take 1.52 s
    assert p.limit() * p.per_request_s <= p.budget_s  # type: ignore[operator]


def test_a_fast_core_keeps_batch_max() -> None:
    p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    p.observe(4, 0.12)  # 30 ms a request: 50 would fit
    assert p.limit() == 32
    p.observe(32, 0.0)  # a batch too quick to time does not divide by zero
    assert p.limit() == 32


def test_a_slowdown_shrinks_the_next_batch_at_once_and_a_speed_up_grows_it_gradually() -> None:
    p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    p.observe(10, 0.5)  # 50 ms a request
    assert p.limit() == 30
    p.observe(30, 15.0)  # the core got busy: 500 ms a request, taken whole
    assert p.limit() == 3
    p.observe(3, 0.15)  # one quick batch: the estimate moves by the smoothing, not to 50 ms
    grown = p.limit()
    assert 3 < grown < 30
    for _ in range(30):  # quick batches keep coming: it comes back to the fast figure
        p.observe(p.limit(), 0.05 * p.limit())
    assert p.limit() >= 29


def test_one_request_is_always_worked_on() -> None:
    p = BatchPacer(interval_s=3.0, share=0.25, batch_max=32)
    p.observe(1, 20.0)  # a single request longer than the whole interval
    assert p.limit() == 1


def test_the_poll_interval_share_decides_the_budget() -> None:
    dev = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    prod = BatchPacer(interval_s=300.0, share=0.25, batch_max=32)
    for p in (dev, prod):
        p.observe(8, 8 * 0.4)
    assert (dev.limit(), prod.limit()) == (3, 32)


def test_empty_or_negative_reports_are_ignored() -> None:
    p = BatchPacer(interval_s=6.0, share=0.25, batch_max=32)
    p.observe(0, 3.0)
    p.observe(4, -1.0)
    assert p.per_request_s is None and p.limit() == FIRST_BATCH


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval_s": 0.0, "share": 0.25, "batch_max": 32},
        {"interval_s": 6.0, "share": 0.0, "batch_max": 32},
        {"interval_s": 6.0, "share": 1.5, "batch_max": 32},
        {"interval_s": 6.0, "share": 0.25, "batch_max": 0},
    ],
)
def test_settings_that_cannot_pace_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BatchPacer(**kwargs)  # type: ignore[arg-type]
