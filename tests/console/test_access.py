"""The access policy: one rule for calls, checked in SQL (lists, search, metrics) and in Python
(opening one call) — the two must agree for every user and every call, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from console.access import can_read_summary, can_see_call, owns_call, visible_calls
from console.models import Call, Summary, User
from console.store import Store
from console.vocabulary import SummaryStatus

USERS = [
    User(username="kim", role="counselor", team="A"),
    User(username="lee", role="counselor", team="A"),
    User(username="nobody", role="counselor", team=None),
    User(username="boss", role="supervisor", team="A"),
    User(username="bossb", role="supervisor", team="B"),
    User(username="chief", role="supervisor", team=None),  # no team: no call (not every call)
    User(username="qa1", role="qa", team=None),
    User(username="root", role="admin", team=None),
    User(username="guest", role="visitor", team=None),  # a role this version does not know
]
# (call id, counselor, team): every combination of known, other and missing values.
CALLS = [
    ("g-kim-a", "kim", "A"),
    ("g-lee-a", "lee", "A"),
    ("g-kim-b", "kim", "B"),
    ("g-park-b", "park", "B"),
    ("g-kim-none", "kim", None),
    ("g-none-a", None, "A"),
    ("g-none-none", None, None),  # events arrived before call_started
]


def test_sql_and_python_rules_agree(store: Store) -> None:
    t = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    with store.sessions.begin() as db:
        for call_id, counselor, team in CALLS:
            db.add(Call(call_id=call_id, counselor_id=counselor, team=team, last_seq=0, first_seen_at=t))
    with store.sessions() as db:
        calls = list(db.scalars(select(Call).where(Call.call_id.like("g-%"))))
        assert len(calls) == len(CALLS)
        seen = {}
        for user in USERS:
            in_sql = set(
                db.scalars(select(Call.call_id).where(Call.call_id.like("g-%"), visible_calls(user)))
            )
            in_python = {c.call_id for c in calls if can_see_call(user, c)}
            assert in_sql == in_python, user.username
            seen[user.username] = in_python
    # And the rule is the one the docs state.
    assert seen["kim"] == {"g-kim-a", "g-kim-b", "g-kim-none"}
    assert seen["nobody"] == set()
    assert seen["boss"] == {"g-kim-a", "g-lee-a", "g-none-a"}
    assert seen["qa1"] == seen["root"] == {c[0] for c in CALLS}
    assert seen["chief"] == set()
    assert seen["guest"] == set()


def test_summary_under_review_and_ownership() -> None:
    kim, boss = USERS[0], USERS[3]
    call = Call(call_id="c", counselor_id="kim", team="A")
    for status in SummaryStatus:
        sm = Summary(summary_id="s", call_id="c", status=status)
        assert can_read_summary(boss, sm)
        assert can_read_summary(kim, sm) == (status != SummaryStatus.submitted)
    assert owns_call(kim, call) and not owns_call(USERS[1], call) and not owns_call(boss, call)
