/* Live call view (counselor desk, or any call opened read-only).
   The websocket resumes from the last seq it applied: nothing missing, nothing twice. */
"use strict";
(() => {
  const { api, el, fmtTs, fmtDur, parseTs, CallView } = Dasan;
  const root = document.getElementById("live");
  const mode = root.dataset.mode;
  const readonly = root.dataset.readonly === "true";
  const $ = (id) => document.getElementById(id);
  const conn = $("conn");

  const state = { callId: root.dataset.callId || null, lastSeq: 0, ws: null, retry: 0, holdUntil: 0, started: null, ended: false, closing: false, timer: null };
  window.__dasanLive = {
    state,
    /** Drop the connection (as a network failure would) and stay away for holdMs before resuming. */
    drop(holdMs = 0) { state.holdUntil = Date.now() + holdMs; if (state.ws) state.ws.close(4000, "test drop"); },
  };

  const view = new CallView(root, { readonly, onStarted, onEnded, onSummary });
  // The regulation search preselects the district the caller named last (e.g. "강남구").
  const districtSelect = $("kb-district");
  const districts = districtSelect ? [...districtSelect.options].map((o) => o.value).filter(Boolean).sort((a, b) => b.length - a.length) : [];
  const districtRe = districts.length ? new RegExp(`(${districts.join("|")})`, "g") : null;
  function noteDistrict(ev) {
    if (!districtRe || !Dasan.kbSearch || ev.type !== "segment" || ev.channel !== "caller" || !ev.is_final) return;
    let last = null;
    for (const m of ev.text.matchAll(districtRe)) {
      // '중구' inside another word (e.g. '집중구간') is not the district
      if (m[1] === "중구" && m.index > 0 && /[가-힣]/.test(ev.text[m.index - 1])) continue;
      last = m[1];
    }
    if (last) Dasan.kbSearch.setDistrict(last);
  }
  const applyEvent = view.apply.bind(view);
  view.apply = (item) => { noteDistrict(item.event); return applyEvent(item); };

  function setConn(kind, text) { conn.className = `conn ${kind}`; conn.textContent = text; }

  function connect() {
    if (!state.callId) return;
    const wait = state.holdUntil - Date.now();
    if (wait > 0) { setTimeout(connect, wait); return; }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws/calls/${encodeURIComponent(state.callId)}?after=${state.lastSeq}`);
    state.ws = ws;
    ws.onopen = () => { state.retry = 0; setConn("ok", "연결됨"); };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "events") {
        for (const item of msg.items) {
          if (item.seq <= state.lastSeq) continue; // already applied (resume overlap)
          state.lastSeq = item.seq;
          root.dataset.lastSeq = String(item.seq);
          view.apply(item);
        }
        $("waiting").hidden = true;
      } else if (msg.type === "status") {
        if (msg.recorder_ok === false) setConn("warn", "실시간 수신 지연 — 재연결 중");
        else setConn("ok", "연결됨");
      }
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws || state.closing) return;
      state.ws = null;
      // 4401: not logged in; 1008: the session ended while open (log-out elsewhere, revoked, expired)
      if (ev.code === 4401 || ev.code === 1008) { location.href = `/login?next=${encodeURIComponent(location.pathname)}`; return; }
      if (ev.code === 4429) { setConn("bad", "실시간 창이 너무 많이 열려 있습니다. 다른 창을 닫아 주세요."); return; }
      if (ev.code === 4403) { setConn("bad", "이 통화를 볼 권한이 없습니다"); return; }
      setConn("bad", "재연결 중…");
      const delay = Math.min(500 * 2 ** state.retry, 5000) + Math.random() * 300;
      state.retry += 1;
      setTimeout(connect, delay);
    };
  }

  function switchTo(callId) {
    state.closing = true;
    if (state.ws) state.ws.close(1000);
    state.closing = false;
    state.ws = null;
    state.callId = callId;
    state.lastSeq = 0;
    state.started = null;
    state.ended = false;
    view.reset();
    if (Dasan.kbSearch) Dasan.kbSearch.reset();
    $("summary-box").hidden = true;
    $("summary-box").replaceChildren();
    $("history-box").hidden = true;
    $("call-title").textContent = `통화 ${callId}`;
    $("waiting").hidden = false;
    $("waiting").textContent = "대화를 불러오는 중…";
    connect();
  }

  function tick() {
    if (!state.started) { $("call-timer").textContent = ""; return; }
    const end = state.ended ? state.ended : new Date();
    $("call-timer").textContent = `통화 시간 ${fmtDur((end - state.started) / 1000)}`;
  }
  setInterval(tick, 1000);

  function onStarted(ev) {
    state.started = parseTs(ev.started_at);
    const badge = $("call-source");
    badge.hidden = false;
    badge.className = ev.source === "scripted" ? "badge scripted" : "badge";
    badge.textContent = ev.source === "scripted" ? "스크립트 통화(시뮬레이션)" : "실시간 음성 인식";
    $("call-caller").textContent = `${ev.caller_number_masked || "번호 미상"} · 상담사 ${ev.counselor_id}${ev.category ? " · " + ev.category : ""} · 시작 ${fmtTs(ev.started_at)}`;
    const st = $("call-state"); st.className = "badge state oncall"; st.textContent = "통화 중";
    loadHistory();
    tick();
  }

  function onEnded(ev) {
    state.ended = parseTs(ev.ended_at) || new Date();
    const st = $("call-state"); st.className = "badge state ended"; st.textContent = "통화 종료";
    tick();
  }

  async function loadHistory() {
    const callId = state.callId;
    try {
      const rows = await api(`/api/calls/${encodeURIComponent(callId)}/history`);
      if (callId !== state.callId || !rows.length) return;
      $("history").replaceChildren(...rows.map((h) => el("li", {},
        el("b", { text: `${fmtTs(h.started_at)} · ${h.category}` }), " ",
        el("span", { text: h.summary.call_reason || "" }),
        h.summary.actions && h.summary.actions.length ? el("small", { class: "muted", text: ` (${h.summary.actions.map((a) => a.kind).join(", ")})` }) : null)));
      $("history-box").hidden = false;
    } catch (e) { /* history is optional */ }
  }

  const lines = (v) => v.split("\n").map((s) => s.trim()).filter(Boolean);

  async function onSummary(ev, _item, known) {
    const box = $("summary-box");
    box.hidden = false;
    let sm = known || null;
    if (!sm) {
      try { sm = await api(`/api/calls/${encodeURIComponent(state.callId)}/summary`); }
      catch (e) { sm = String(e.message).startsWith("403") ? { status: "submitted", content: null } : null; }
    }
    const status = sm ? sm.status : null;
    if (sm && !sm.content) {
      box.replaceChildren(el("h2", { text: "통화 요약 · 검토 대기" }),
        el("p", { class: "muted", text: "요약을 제출했습니다. 관리자 검토가 끝나면 다시 볼 수 있습니다." }));
      return;
    }
    const c = sm ? sm.content : ev;
    const editable = !readonly && status && (status === "draft" || status === "rejected");
    box.replaceChildren(el("h2", { text: "통화 요약" + (status ? ` · ${({ draft: "작성 중", submitted: "검토 대기", approved: "승인", rejected: "반려" })[status]}` : "") }));
    if (!editable) {
      const dl = el("dl", { class: "summary-view" },
        el("dt", { text: "민원 유형" }), el("dd", { text: c.category }),
        el("dt", { text: "통화 사유" }), el("dd", { text: c.call_reason }),
        el("dt", { text: "주요 사실" }), el("dd", {}, el("ul", {}, ...c.key_facts.map((x) => el("li", { text: x })))),
        el("dt", { text: "조치" }), el("dd", {}, el("ul", {}, ...c.actions.map((a) => el("li", { text: `${a.kind}: ${a.text}` })))));
      box.append(dl);
      if (!readonly && status === "submitted") box.append(el("p", { class: "muted", text: "제출했습니다. 관리자 검토를 기다리고 있습니다." }));
      return;
    }
    const f = {
      category: el("input", { value: c.category, maxlength: 64 }),
      call_reason: el("textarea", { rows: 2 }),
      key_facts: el("textarea", { rows: 3 }),
      counselor_answers: el("textarea", { rows: 2 }),
      actions: el("textarea", { rows: 2 }),
    };
    f.call_reason.value = c.call_reason;
    f.key_facts.value = c.key_facts.join("\n");
    f.counselor_answers.value = c.counselor_answers.join("\n");
    f.actions.value = c.actions.map((a) => `${a.kind}: ${a.text}`).join("\n");
    const msg = el("small", { class: "muted" });
    const submit = el("button", { type: "button", class: "primary", text: "요약 제출" });
    submit.addEventListener("click", async () => {
      const content = {
        ...c,
        category: f.category.value.trim(),
        call_reason: f.call_reason.value.trim(),
        key_facts: lines(f.key_facts.value),
        counselor_answers: lines(f.counselor_answers.value),
        actions: lines(f.actions.value).map((l) => { const i = l.indexOf(":"); return i > 0 ? { kind: l.slice(0, i).trim(), text: l.slice(i + 1).trim() } : { kind: "안내", text: l }; }),
      };
      delete content.type; delete content.summary_id;
      try {
        const saved = await api(`/api/summaries/${encodeURIComponent(sm.summary_id)}/submit`, { method: "POST", body: { content } });
        onSummary(ev, null, saved);
      } catch (e) { msg.textContent = `제출 실패: ${e.message}`; }
    });
    const form = el("div", { class: "summary-form" },
      status === "rejected" ? el("p", { class: "error", text: "반려된 요약입니다. 수정해서 다시 제출해 주세요." }) : el("p", { class: "muted", text: "내용을 확인하고 필요하면 고친 뒤 제출해 주세요." }),
      el("label", {}, "민원 유형", f.category), el("label", {}, "통화 사유", f.call_reason),
      el("label", {}, "주요 사실 (한 줄에 하나)", f.key_facts), el("label", {}, "상담사 안내 내용", f.counselor_answers),
      el("label", {}, "조치 (유형: 내용)", f.actions),
      el("p", { class: "muted", text: `인용 조문: ${(c.regulations_cited || []).join(", ") || "없음"}` }),
      el("div", { class: "actions" }, submit, msg));
    box.append(form);
  }

  async function followDesk() {
    try {
      const call = await api("/api/active-call");
      if (call && call.call_id !== state.callId) switchTo(call.call_id);
      if (!call && !state.callId) { $("waiting").hidden = false; }
    } catch (e) {
      if (String(e.message).startsWith("401")) location.href = "/login?next=/desk";
    }
  }

  if (mode === "desk") { followDesk(); setInterval(followDesk, 2000); }
  else connect();
})();
