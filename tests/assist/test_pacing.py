"""The pacer that sizes a tick's suggestion batch by what the last batch cost on this machine
(assist/pacing.py): pure arithmetic on reported timings, no clock."""

from __future__ import annotations

import pytest

from assist.pacing import FIRST_BATCH, BatchPacer


def test_the_first_batch_is_small_until_a_cost_was_measured() -> None:
    p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    assert p.budget_s == pytest.approx(3.0)
    assert p.per_request_s is None and p.limit() == FIRST_BATCH
    assert BatchPacer(interval_s=6.0, share=0.5, batch_max=2).limit() == 2  # never above batch_max


def test_a_slow_core_gets_batches_that_fit_the_share_of_the_poll_interval() -> None:
    # session 28's AVX2-only core: 32 cards in ~9.7 s against the 6 s development interval
    p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    p.observe(32, 9.7)
    assert p.limit() == 10  # 32 x 3 / 9.7 = 9.9


def batches(p: BatchPacer, fixed: float, per_request: float, due: int, ticks: int) -> list[tuple[int, float]]:
    """Ticks of a core where a batch costs ``fixed + per_request * n``, ``due`` requests waiting."""
    out = []
    for _ in range(ticks):
        n = min(due, p.limit())
        seconds = fixed + per_request * n
        p.observe(n, seconds)
        out.append((n, seconds))
    return out


def test_with_a_fixed_part_per_batch_it_grows_to_the_largest_batch_that_fits() -> None:
    # 1 s a batch whatever its size + 0.02 s a request, 1.5 s budget: 25 fit (1.5 s exactly)
    p = BatchPacer(interval_s=3.0, share=0.5, batch_max=32)
    seen = batches(p, fixed=1.0, per_request=0.02, due=100, ticks=40)
    assert all(seconds <= 1.5 + 0.02 for _, seconds in seen)  # past the budget by a rounding at most
    assert 24 <= seen[-1][0] <= 25


def test_a_fast_core_keeps_batch_max() -> None:
    p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    p.observe(4, 0.12)  # 30 ms a request: 100 would fit
    assert p.limit() == 32
    p.observe(32, 0.0)  # a batch too quick to time: no division by zero
    assert p.limit() == 32


def test_a_slowdown_cuts_the_next_batch_at_once_and_a_speed_up_grows_it_back() -> None:
    p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    assert batches(p, fixed=0.1, per_request=0.05, due=100, ticks=3)[-1][0] == 32
    p.observe(32, 0.1 + 0.3 * 32)  # the core got busy: 9.7 s, past the 3 s budget
    assert p.limit() == 10  # in proportion, at once
    busy = batches(p, fixed=0.1, per_request=0.3, due=100, ticks=5)
    assert all(seconds <= 3.0 + 0.1 for _, seconds in busy)  # within the budget and the fixed part
    assert batches(p, fixed=0.1, per_request=0.05, due=100, ticks=3)[-1][0] == 32


def test_one_request_is_always_worked_on() -> None:
    p = BatchPacer(interval_s=3.0, share=0.5, batch_max=32)
    p.observe(1, 20.0)  # a single request longer than the whole interval
    assert p.limit() == 1


def test_the_poll_interval_decides_the_budget() -> None:
    dev = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    prod = BatchPacer(interval_s=300.0, share=0.5, batch_max=32)
    for p in (dev, prod):
        p.observe(8, 8 * 0.45)
    assert (dev.limit(), prod.limit()) == (7, 32)  # 8 x 3 / 3.6 = 6.7


def test_empty_or_negative_reports_are_ignored() -> None:
    p = BatchPacer(interval_s=6.0, share=0.5, batch_max=32)
    p.observe(0, 3.0)
    p.observe(4, -1.0)
    assert p.last is None and p.limit() == FIRST_BATCH


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval_s": 0.0, "share": 0.5, "batch_max": 32},
        {"interval_s": 6.0, "share": 0.0, "batch_max": 32},
        {"interval_s": 6.0, "share": 1.5, "batch_max": 32},
        {"interval_s": 6.0, "share": 0.5, "batch_max": 0},
    ],
)
def test_settings_that_cannot_pace_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BatchPacer(**kwargs)  # type: ignore[arg-type]
