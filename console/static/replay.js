/* Replay: the call's timeline played back at 1×/2×/4×, with pause and jump-to-segment. */
"use strict";
(() => {
  const { api, el, fmtDur, parseTs, CallView } = Dasan;
  const root = document.getElementById("replay");
  const callId = root.dataset.callId;
  const $ = (id) => document.getElementById(id);
  const view = new CallView(root, { readonly: true });
  let items = [];
  let t0 = 0, duration = 0, clock = 0, applied = 0, speed = 1, playing = false, lastTick = 0;

  function offset(item) { return Math.max(0, (parseTs(item.at) - t0) / 1000); }

  async function load() {
    let after = 0;
    for (;;) {
      const batch = await api(`/api/calls/${encodeURIComponent(callId)}/events?after=${after}&limit=1000`);
      items.push(...batch);
      if (batch.length < 1000) break;
      after = batch[batch.length - 1].seq;
    }
    const start = items.find((i) => i.event.type === "call_started");
    t0 = start ? parseTs(start.event.started_at) : (items.length ? parseTs(items[0].at) : new Date());
    items.forEach((i) => { i.t = offset(i); });
    items.sort((a, b) => a.t - b.t || a.seq - b.seq);
    duration = items.length ? items[items.length - 1].t : 0;
    $("scrub").max = String(duration);
    const finals = items.filter((i) => i.event.type === "segment" && i.event.is_final);
    $("segments").replaceChildren(...finals.map((i) => el("li", {},
      el("button", { type: "button", "data-t": i.t, text: `${fmtDur(i.t)} ${i.event.channel === "caller" ? "민원인" : "상담사"}: ${i.event.text.slice(0, 40)}`,
        onclick: () => seek(i.t, i.event.segment_id) }))));
    render();
  }

  function seek(t, highlight) {
    clock = Math.min(Math.max(0, t), duration);
    view.reset();
    applied = 0;
    render();
    if (highlight) {
      const li = root.querySelector(`[data-segment-id="${CSS.escape(highlight)}"]`);
      if (li) { li.classList.add("highlight"); li.scrollIntoView({ block: "center" }); }
    }
  }

  function render() {
    while (applied < items.length && items[applied].t <= clock + 1e-6) view.apply(items[applied++]);
    $("scrub").value = String(clock);
    $("clock").textContent = `${fmtDur(clock)} / ${fmtDur(duration)}`;
    root.dataset.applied = String(applied);
  }

  function frame(now) {
    if (!playing) return;
    clock += ((now - lastTick) / 1000) * speed;
    lastTick = now;
    if (clock >= duration) { clock = duration; render(); setPlaying(false); return; }
    render();
    requestAnimationFrame(frame);
  }

  function setPlaying(on) {
    playing = on;
    $("play").textContent = on ? "⏸ 일시정지" : "▶ 재생";
    if (on) {
      if (clock >= duration) seek(0);
      lastTick = performance.now();
      requestAnimationFrame(frame);
    }
  }

  $("play").addEventListener("click", () => setPlaying(!playing));
  document.querySelectorAll("[data-speed]").forEach((b) => b.addEventListener("click", () => {
    speed = Number(b.dataset.speed);
    document.querySelectorAll("[data-speed]").forEach((x) => x.classList.toggle("on", x === b));
  }));
  $("scrub").addEventListener("input", (e) => seek(Number(e.target.value)));
  const raw = $("raw-btn");
  if (raw) raw.addEventListener("click", async () => {
    const m = $("article-modal");
    $("article-title").textContent = "원문 대화 (마스킹 해제)";
    $("article-meta").textContent = "이 열람은 감사 기록에 남습니다. 개인정보를 옮겨 적지 마세요.";
    $("article-text").textContent = "불러오는 중…";
    m.hidden = false;
    try {
      // A POST with the CSRF token: reading the unmasked text is an audited action, not a plain GET.
      const segs = await api(`/api/calls/${encodeURIComponent(callId)}/transcript/raw`, { method: "POST", body: {} });
      $("article-text").textContent = segs.map((s) => `${fmtDur(s.start_s)} ${s.channel === "caller" ? "민원인" : "상담사"}: ${s.text}`).join("\n");
    } catch (e) { $("article-text").textContent = `불러오지 못했습니다 (${e.message})`; }
  });
  load().catch((e) => { $("transcript").replaceChildren(el("li", { class: "error", text: `불러오기 실패: ${e.message}` })); });
})();
