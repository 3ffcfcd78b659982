"""The replay report as one self-contained HTML page (no scripts, no external files), in Korean,
laid out for a 1366×768 screen: totals on top, then each call's live and candidate cards side by side."""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
*{box-sizing:border-box}body{font-family:'Noto Sans KR','Malgun Gothic',sans-serif;margin:0;
background:#f4f6f8;color:#1d2733;font-size:14px;line-height:1.45}
header{background:#16325c;color:#fff;padding:12px 20px}header h1{font-size:19px;margin:0 0 4px}
header p{margin:0;font-size:12px;opacity:.85}main{padding:12px 20px;max-width:1340px}
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 14px}.tile{background:#fff;border:1px solid #d5dbe3;
border-radius:6px;padding:8px 12px;min-width:140px}.tile b{display:block;font-size:20px}.tile span{font-size:12px;color:#566}
.tile.bad b{color:#b3261e}.tile.good b{color:#1b7f3b}
section.call{background:#fff;border:1px solid #d5dbe3;border-radius:6px;margin:0 0 14px;padding:10px 12px}
section.call h2{font-size:15px;margin:0 0 6px}section.call h2 small{font-weight:normal;color:#566}
table{border-collapse:collapse;width:100%;table-layout:fixed}th,td{border-top:1px solid #e3e7ec;padding:6px;
vertical-align:top;text-align:left}th{font-size:12px;color:#566;background:#f8f9fb}
col.q{width:20%}col.card{width:31%}col.st{width:9%}col.fb{width:9%}
.card p{margin:2px 0}.cite{font-weight:600;color:#16325c}.draft{color:#333}.abst{color:#8a5a00}
.prov{font-size:11px;color:#6b7785;margin-top:4px}.none{color:#98a2ad}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;background:#e8edf3}
.s-same{background:#e3f4e8}.s-changed{background:#fde8d7}.s-now_abstains{background:#fff2c6}
.s-dropped{background:#f6dcdc}.s-new{background:#dde9fb}.s-now_answers{background:#e5e0fa}
.flag{display:block;font-size:12px;font-weight:700;margin-top:3px}.flag.reg{color:#b3261e}.flag.fix{color:#1b7f3b}
.summ{display:grid;grid-template-columns:1fr 1fr 1fr;gap:8px;margin-top:8px;font-size:13px}
.summ div{background:#f8f9fb;border:1px solid #e3e7ec;border-radius:4px;padding:6px}
.summ h3{font-size:12px;margin:0 0 3px;color:#566}
"""

PROV_LABEL = "만든 방법"
STATUS_KO = {"draft": "작성 중", "submitted": "검토 대기", "approved": "승인", "rejected": "반려"}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def provenance_line(p: dict[str, Any] | None, label: str = PROV_LABEL) -> str:
    """The "how this was made" line of a card: index, corpus version, encoder, generator, settings."""
    if not p:
        return f'<div class="prov">{label}: 기록 없음</div>'
    parts = [
        f"색인 {str(p.get('index_key') or '-')[:10]}",
        f"말뭉치 {str(p.get('corpus_version') or '-')[:10]}",
        f"인코더 {p.get('encoder') or 'BM25만'}",
        f"생성 {p.get('generator')}" + (f"({p['generator_model']})" if p.get("generator_model") else ""),
        f"설정 {str(p.get('settings_hash') or '-')[:8]}",
        str(p.get("variant") or ""),
    ]
    return f'<div class="prov">{label}: {escape(" · ".join(parts))}</div>'


def card_html(card: dict[str, Any] | None) -> str:
    if not card:
        return '<td class="card none">(카드 없음)</td>'
    if card["abstained"]:
        body = f'<p class="abst">근거 없음 — 답변 보류</p><p class="draft">{escape(card["draft"][:200])}</p>'
    else:
        cites = "".join(f'<p class="cite">{escape(c)}</p>' for c in card["citations"][:3])
        body = f'{cites}<p class="draft">{escape(card["draft"][:240])}</p>'
    return f'<td class="card">{body}{provenance_line(card.get("provenance"))}</td>'


def feedback_html(fb: dict[str, Any] | None) -> str:
    if not fb:
        return '<span class="none">없음</span>'
    out = []
    if fb.get("vote") == "up":
        out.append("도움됨")
    elif fb.get("vote") == "down":
        out.append("아쉬움")
    if fb.get("copied"):
        out.append(f"복사 {fb['copied']}회")
    if fb.get("reason"):
        out.append(f"<br><small>{escape(fb['reason'][:120])}</small>")
    return " ".join(out) or '<span class="none">없음</span>'


def _summary_box(title: str, s: dict[str, Any] | None, extra: str = "") -> str:
    if not s:
        return f"<div><h3>{title}</h3><span class='none'>없음</span></div>"
    regs = ", ".join(s.get("regulations_cited") or []) or "-"
    return (
        f"<div><h3>{title}{extra}</h3><b>{escape(str(s.get('category') or '-'))}</b> "
        f"{escape(str(s.get('call_reason') or ''))[:200]}<br><small>근거 규정: {escape(regs)}</small></div>"
    )


def call_html(call: dict[str, Any]) -> str:
    t = call["totals"]
    rows = []
    for i, p in enumerate(call["pairs"], 1):
        flag = ""
        if p["regression"]:
            flag = '<span class="flag reg">회귀</span>'
        elif p["fix"]:
            flag = '<span class="flag fix">개선</span>'
        rows.append(
            f"<tr><td>{i}. {escape(p.get('trigger_text') or '')[:160]}</td>{card_html(p['live'])}"
            f"{card_html(p['candidate'])}<td><span class='badge s-{p['status']}'>{p['label']}</span>{flag}</td>"
            f"<td>{feedback_html(p['feedback'])}</td></tr>"
        )
    summ = call.get("summary") or {}
    rev = summ.get("reviewed")
    rev_title = "상담사·검토 요약"
    if rev:
        status = STATUS_KO.get(rev["status"], rev["status"])
        rev_title += f" ({status}{', 수정됨' if rev['edited'] else ''})"
    cmp = ""
    if summ.get("category_same") is not None:
        cmp = (
            f" — 유형 {'같음' if summ['category_same'] else '다름'}, 규정 겹침 {summ['regulations_jaccard']}"
        )
    return f"""<section class="call" id="{escape(call["call_id"])}">
<h2>통화 {escape(call["call_id"])} <small>상담사 {escape(call.get("counselor_id") or "-")} ·
{escape((call.get("started_at") or "")[:16].replace("T", " "))} · 출처 {escape(call.get("origin") or "-")} ·
일치 {_pct(t["agreement"])} · 회귀 {t["regressions"]} · 개선 {t["fixes"]}</small></h2>
<table><colgroup><col class="q"><col class="card"><col class="card"><col class="st"><col class="fb"></colgroup>
<tr><th>질문 구간 (마스킹)</th><th>실제로 보인 카드</th><th>후보 카드</th><th>결과</th><th>상담사 평가</th></tr>
{"".join(rows) or '<tr><td colspan="5" class="none">카드 없음</td></tr>'}</table>
<div class="summ">{_summary_box("실시간 요약", summ.get("live"))}{_summary_box(rev_title, rev)}
{_summary_box("후보 요약", summ.get("candidate"), cmp)}</div></section>"""


def render(report: dict[str, Any]) -> str:
    t = report["totals"]
    st = t["status"]
    cand = report.get("candidate") or {}
    if "shadow" in cand:
        what = f"섀도 {cand['shadow']}의 출력"
    else:
        sets = cand.get("set") or {}
        what = ", ".join(f"{k}={v}" for k, v in sets.items()) or "현재 설정 그대로"
    tiles = [
        ("통화", t["calls"], ""),
        ("일치율", _pct(t["agreement"]), ""),
        ("근거 변경", st["changed"], ""),
        ("이제 보류", st["now_abstains"], ""),
        ("새 카드 / 사라짐", f"{st['new']} / {st['dropped']}", ""),
        ("보류율 (실제→후보)", f"{_pct(t['abstention_live'])} → {_pct(t['abstention_candidate'])}", ""),
        ("회귀 (도움됨·복사한 카드가 바뀜)", t["regressions"], "bad" if t["regressions"] else ""),
        ("개선 (아쉬움 카드가 바뀜)", t["fixes"], "good" if t["fixes"] else ""),
    ]
    lat = t.get("latency_candidate") or {}
    if lat:
        names = {"masking": "마스킹", "keywords": "키워드", "retrieval": "검색", "draft": "초안"}
        tiles.append(
            (
                "후보 지연 p50 (ms)",
                " · ".join(f"{names[k]} {v['p50_ms']}" for k, v in lat.items() if k in names),
                "",
            )
        )
    tile_html = "".join(
        f'<div class="tile {cls}"><b>{escape(str(v))}</b><span>{escape(k)}</span></div>'
        for k, v, cls in tiles
    )
    calls = "".join(call_html(c) for c in report["calls"])
    return f"""<!doctype html><html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>재생 비교 보고서 {escape(report["run_id"])}</title><style>{CSS}</style></head><body>
<header><h1>재생 비교 보고서 — 지난 통화를 후보 설정으로 다시 돌려 본 결과</h1>
<p>실행 {escape(report["run_id"])} · 후보: {escape(what)} · 상담사 화면에는 아무것도 보내지 않았습니다</p></header>
<main><div class="tiles">{tile_html}</div>
{provenance_line(cand.get("provenance"), "후보 설정이 만든 방법")}
{calls}</main></body></html>"""
