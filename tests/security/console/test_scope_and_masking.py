"""Issue 14, who may see what: caller history scoped by the viewer's role and team (one rule,
console.access.history_scope) and audited; a supervisor without a team sees no call (and is told
why), not every team's; text typed by people is masked before it is stored."""

from __future__ import annotations

from sqlalchemy import select

from console.models import Feedback, Summary, SummaryReview
from console.store import Store
from tests.console.conftest import csrf_of, login

KEY = "c3" * 32
PII = "제 연락처는 010-3456-7890, 주민번호 900101-1234567 입니다"


def test_caller_history_is_scoped_and_audited(client_factory, store: Store, users, call_script) -> None:
    team_b = call_script("b", counselor="park", team="B", caller_key=KEY)
    team_a = call_script("a", counselor="lee", team="A", caller_key=KEY)
    now_ = call_script("n", counselor="kim", team="A", caller_key=KEY)
    for sc in (team_b, team_a, now_):
        for e in sc.full():
            store.record(e)
    for sc, boss in ((team_b, "bossb"), (team_a, "boss")):
        store.review_action(f"{sc.call_id}-sum", sc.counselor, "submit", None, None)
        store.review_action(f"{sc.call_id}-sum", boss, "approve", None, None)
    seen = {}
    for name in ("kim", "boss", "qa1"):
        c = client_factory()
        login(c, name)
        seen[name] = {h["call_id"] for h in c.get(f"/api/calls/{now_.call_id}/history").json()}
    # Before: everyone who could see the call got team B's summary too.
    assert seen["kim"] == seen["boss"] == {team_a.call_id}
    assert seen["qa1"] == {team_a.call_id, team_b.call_id}
    audited = store.audit_page(action="caller_history")[0]
    assert {e["username"] for e in audited} == {"kim", "boss", "qa1"}


def test_supervisor_without_a_team_sees_no_call(client_factory, store: Store, users, call_script) -> None:
    for e in call_script("x", counselor="kim", team="A").full():
        store.record(e)
    from console.auth import hash_password
    from tests.console.conftest import PASSWORD

    store.add_user("chief", hash_password(PASSWORD), "supervisor", None)
    c = client_factory()
    login(c, "chief")
    assert c.get("/api/calls").json()["total"] == 0
    assert c.get("/api/board").json() == []
    assert c.get("/api/reviews", params={"status": "draft"}).json()["total"] == 0
    assert "팀이 지정되지 않아" in c.get("/board").text


def test_text_typed_by_people_is_masked_before_it_is_stored(
    client_factory, store: Store, users, call_script
) -> None:
    sc = call_script(counselor="kim", team="A")
    for e in sc.full():
        store.record(e)
    kim = client_factory()
    login(kim, "kim")
    token = csrf_of(kim)
    kim.post(
        f"/api/suggestions/{sc.call_id}-s1/feedback",
        json={"vote": "down", "reason": PII},
        headers={"X-CSRF-Token": token},
    )
    content = {
        "category": "주정차",
        "call_reason": PII,
        "key_facts": [PII],
        "counselor_answers": ["안내함"],
        "actions": [{"kind": "안내", "text": PII}],
    }
    r = kim.post(
        f"/api/summaries/{sc.call_id}-sum/submit", json={"content": content}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 200
    boss = client_factory()
    login(boss, "boss")
    r = boss.post(
        f"/api/summaries/{sc.call_id}-sum/review",
        json={"action": "edit", "comment": PII, "content": {**content, "key_facts": [PII, "추가"]}},
        headers={"X-CSRF-Token": csrf_of(boss)},
    )
    assert r.status_code == 200
    with store.sessions() as db:
        stored = [f.reason for f in db.scalars(select(Feedback))]
        stored += [str(s.content) for s in db.scalars(select(Summary))]
        stored += [f"{h.comment} {h.content}" for h in db.scalars(select(SummaryReview))]
    text = " ".join(x for x in stored if x)
    assert "010-3456-7890" not in text and "1234567" not in text
    assert "[전화번호]" in text and "[주민번호]" in text
