/* Shared helpers: CSRF-aware fetch, the article modal, and rendering of call events.
   Every piece of call text is inserted with textContent (never innerHTML): hostile strings stay inert. */
"use strict";
const Dasan = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  async function api(path, opts = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...opts };
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf();
      init.body = JSON.stringify(opts.body);
    }
    const r = await fetch(path, init);
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${r.status}: ${detail}`);
    }
    return r.status === 204 ? null : r.json();
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function parseTs(s) {
    if (!s) return null;
    return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
  }
  const fmtTs = (s) => {
    const d = parseTs(s);
    return d ? d.toLocaleString("ko-KR", { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) : "";
  };
  const fmtDur = (sec) => {
    if (sec === null || sec === undefined || isNaN(sec)) return "";
    sec = Math.max(0, Math.round(sec));
    return `${Math.floor(sec / 60)}:${String(sec % 60).padStart(2, "0")}`;
  };

  // ------------------------------------------------------------------ article modal
  const modal = () => document.getElementById("article-modal");
  /** The full article: the exact version cited when its effective date is given (a card's citation,
      a search result), else the version in force; says when a newer version exists and links the
      별표 of the same law it mentions. */
  async function openArticle(docId, fallback, effectiveDate) {
    const m = modal();
    const $ = (id) => document.getElementById(id);
    $("article-title").textContent = fallback || docId;
    $("article-meta").textContent = "불러오는 중…";
    $("article-text").textContent = "";
    $("article-newer").hidden = true;
    $("article-links").hidden = true;
    $("article-links").replaceChildren();
    m.hidden = false;
    m.querySelector("[data-close]").focus();
    try {
      const q = `id=${encodeURIComponent(docId)}${effectiveDate ? `&effective_date=${encodeURIComponent(effectiveDate)}` : ""}`;
      const a = await api(`/api/articles?${q}`);
      $("article-title").textContent = a.citation || docId;
      const parts = [a.law_name || "", `시행일 ${a.effective_date || "미상"}`];
      if (a.kind === "별표") parts.push("별표(제목만 제공)");
      if (a.index_key) parts.push(`지식베이스 버전 ${a.index_key.slice(0, 8)}`);
      $("article-meta").textContent = parts.filter(Boolean).join(" · ");
      $("article-text").textContent = a.text || "(본문 없음)";
      if (a.newer_version) {
        const box = $("article-newer");
        box.replaceChildren(
          `이 조문은 ${a.newer_version} 시행 개정본이 있습니다. 위 내용은 ${a.effective_date || "이전"} 시행본입니다. `,
          el("button", { type: "button", class: "link-btn", text: "최신 조문 보기", onclick: () => openArticle(docId, fallback, a.newer_version) }));
        box.hidden = false;
      }
      if (a.appendices && a.appendices.length) {
        const links = $("article-links");
        links.append(el("strong", { text: "관련 별표" }));
        for (const ap of a.appendices) {
          links.append(el("button", { type: "button", class: "link-btn", "data-record-id": ap.record_id,
            text: `${ap.label}${ap.title ? ` ${ap.title}` : ""}`, onclick: () => openArticle(ap.record_id, ap.label) }));
        }
        links.hidden = false;
      }
    } catch (e) {
      $("article-meta").textContent = `조문을 불러오지 못했습니다 (${e.message})`;
    }
  }
  document.addEventListener("click", (ev) => {
    const m = modal();
    if (!m || m.hidden) return;
    if (ev.target === m || ev.target.closest("[data-close]")) m.hidden = true;
  });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && modal()) modal().hidden = true; });

  // ------------------------------------------------------------------ call view
  /** Renders one call's events into a transcript / keywords / suggestions area. */
  class CallView {
    constructor(root, opts = {}) {
      this.root = root;
      this.opts = opts; // {readonly, onSummary, onStarted, onEnded}
      this.transcript = root.querySelector("#transcript");
      this.keywords = root.querySelector("#keywords");
      this.suggestions = root.querySelector("#suggestions");
      this.segs = new Map(); // segment_id -> {li, revision, final}
      this.suggIds = new Set();
      this.votes = new Map();
    }
    reset() {
      this.transcript.replaceChildren();
      this.keywords.replaceChildren(el("span", { class: "muted", text: "아직 없음" }));
      this.suggestions.replaceChildren(el("p", { class: "muted", text: "민원인의 질문이 들어오면 근거 조문과 함께 답변 초안이 표시됩니다." }));
      this.segs.clear();
      this.suggIds.clear();
    }
    apply(item) {
      const ev = item.event;
      switch (ev.type) {
        case "segment": return this.segment(ev);
        case "keywords": return this.setKeywords(ev.keywords);
        case "suggestion": return this.suggestion(ev);
        case "call_started": return this.opts.onStarted && this.opts.onStarted(ev, item);
        case "call_ended": return this.opts.onEnded && this.opts.onEnded(ev, item);
        case "summary": return this.opts.onSummary && this.opts.onSummary(ev, item);
      }
    }
    segment(ev) {
      const cur = this.segs.get(ev.segment_id);
      if (cur && (cur.final || (!ev.is_final && ev.revision < cur.revision))) return; // finals never change
      const li = el("li", { class: `seg ${ev.channel} ${ev.is_final ? "final" : "partial"}`, "data-segment-id": ev.segment_id },
        el("span", { class: "who", text: ev.channel === "caller" ? "민원인" : "상담사" }),
        el("span", { class: "text", text: ev.text }));
      if (cur) cur.li.replaceWith(li);
      else this.insertOrdered(li, ev.start_s);
      li.dataset.start = ev.start_s;
      this.segs.set(ev.segment_id, { li, revision: ev.revision, final: ev.is_final });
      this.scrollDown(this.transcript.parentElement);
    }
    insertOrdered(li, start) {
      const kids = this.transcript.children;
      for (let i = kids.length - 1; i >= 0; i--) {
        if (parseFloat(kids[i].dataset.start || 0) <= start) { kids[i].after(li); return; }
      }
      this.transcript.prepend(li);
    }
    scrollDown(box) {
      if (box && box.scrollHeight - box.scrollTop - box.clientHeight < 160) box.scrollTop = box.scrollHeight;
    }
    setKeywords(words) {
      this.keywords.replaceChildren(...(words.length ? words.map((w) => el("span", { class: "chip", text: w })) : [el("span", { class: "muted", text: "아직 없음" })]));
    }
    suggestion(ev) {
      if (this.suggIds.has(ev.suggestion_id)) return;
      if (this.suggIds.size === 0) this.suggestions.replaceChildren();
      this.suggIds.add(ev.suggestion_id);
      const byId = new Map(ev.passages.map((p, i) => [p.passage_id, { p, n: i + 1 }]));
      // what the counselor reads of the card: its primary article and the draft's sentences
      const visible = ev.draft.abstained || !ev.passages.length ? ""
        : `${ev.passages[0].doc_id}@${ev.passages[0].effective_date || ""}|${ev.draft.sentences.map((s) => s.text).join(" ")}`;
      const card = el("article", { class: `sugg latest${ev.draft.abstained ? " abstain" : ""}`, "data-suggestion-id": ev.suggestion_id, "data-visible": visible });
      if (ev.draft.abstained) {
        card.append(el("p", { class: "draft", text: ev.draft.abstain_reason || "근거가 충분한 자료를 찾지 못했습니다." }));
      } else {
        const p = el("p", { class: "draft" });
        for (const s of ev.draft.sentences) {
          p.append(el("span", { class: "s", text: s.text }));
          for (const c of s.citations) {
            const ref = byId.get(c);
            if (!ref) continue;
            p.append(el("button", { type: "button", class: "cite", title: ref.p.citation, text: `[${ref.n}]`,
              onclick: () => openArticle(ref.p.doc_id, ref.p.citation, ref.p.effective_date) }));
          }
        }
        card.append(p);
      }
      if (ev.passages.length) {
        // one primary citation (what the draft rests on); the rest as related articles
        const source = (ps) => el("li", {},
          el("button", { type: "button", text: ps.citation, onclick: () => openArticle(ps.doc_id, ps.citation, ps.effective_date) }),
          ps.effective_date ? el("small", { class: "muted", text: ` · 시행 ${ps.effective_date}` }) : null);
        const [primary, ...related] = ev.passages;
        card.append(el("p", { class: "primary-source" }, el("strong", { text: "근거 조문 " }),
          el("button", { type: "button", class: "cite-primary", text: primary.citation, onclick: () => openArticle(primary.doc_id, primary.citation, primary.effective_date) }),
          primary.effective_date ? el("small", { class: "muted", text: ` · 시행 ${primary.effective_date}` }) : null));
        if (related.length) {
          const ol = el("ol", { class: "sources related", start: 2 });
          related.forEach((ps) => ol.append(source(ps)));
          card.append(el("details", { class: "related-sources" }, el("summary", { text: `관련 조문 ${related.length}건` }), ol));
        }
      }
      if (ev.shed) card.append(el("p", { class: "shed muted", text: "접수가 몰려 대화 맥락 없이 고객의 말만으로 찾은 결과입니다. 조문을 한 번 더 확인해 주세요." }));
      if (this.opts.readonly) card.append(provenanceLine(ev.provenance));
      if (!this.opts.readonly && !ev.draft.abstained) card.append(this.feedbackBar(ev));
      else if (!this.opts.readonly) card.append(this.feedbackBar(ev, true));
      for (const old of this.suggestions.querySelectorAll(".sugg.latest")) old.classList.remove("latest");
      if (visible && !this.opts.readonly) {
        // the same answer again (the assist repeats an older card once another went on top): it
        // moves to the top instead of standing twice in the list; read-only views keep every card
        for (const old of this.suggestions.querySelectorAll(".sugg")) if (old.dataset.visible === visible) old.remove();
      }
      this.suggestions.prepend(card);
      this.suggestions.parentElement.scrollTop = 0;
    }
    feedbackBar(ev, noCopy = false) {
      const text = ev.draft.sentences.map((s) => s.text).join(" ");
      const status = el("small", { class: "muted" });
      const icon = (name) => el("span", { class: `icon ${name}`, "aria-hidden": "true" });
      const up = el("button", { type: "button", title: "도움이 됨 (👍)", "aria-label": "도움이 됨" }, icon("up"), " 도움됨");
      const down = el("button", { type: "button", title: "도움이 안 됨 (👎)", "aria-label": "도움이 안 됨" }, icon("down"), " 아쉬움");
      const reasonBox = el("div", { class: "reason", hidden: true });
      const reason = el("input", { placeholder: "이유 (선택)", maxlength: 1000 });
      const send = async (vote) => {
        try {
          await api(`/api/suggestions/${encodeURIComponent(ev.suggestion_id)}/feedback`, { method: "POST", body: { vote, reason: reason.value || null } });
          up.classList.toggle("on", vote === "up"); down.classList.toggle("on", vote === "down");
          status.textContent = vote === "up" ? "평가를 저장했습니다" : "평가를 저장했습니다 — 이유를 남겨 주시면 개선에 쓰입니다";
          reasonBox.hidden = false;
          this.votes.set(ev.suggestion_id, vote);
        } catch (e) { status.textContent = `저장 실패: ${e.message}`; }
      };
      up.addEventListener("click", () => send("up"));
      down.addEventListener("click", () => send("down"));
      reasonBox.append(reason, el("button", { type: "button", text: "이유 저장", onclick: () => send(this.votes.get(ev.suggestion_id) || "down") }));
      const bar = el("div", { class: "bar" });
      if (!noCopy) {
        bar.append(el("button", { type: "button", class: "primary", text: "초안 복사", onclick: async () => {
          try { await navigator.clipboard.writeText(text); } catch (e) { /* clipboard may be unavailable */ }
          try { await api(`/api/suggestions/${encodeURIComponent(ev.suggestion_id)}/copied`, { method: "POST", body: {} }); status.textContent = "초안을 복사했습니다"; }
          catch (e) { status.textContent = `기록 실패: ${e.message}`; }
        } }));
      }
      bar.append(up, down, el("span", { class: "spacer" }), status);
      const wrap = el("div", {}, bar, reasonBox);
      return wrap;
    }
  }

  // "How this was made" under a card, for QA and supervisors (read-only views): index, corpus
  // version, encoder, generator and the hash of the settings (streaming.events.Provenance).
  function provenanceLine(p) {
    if (!p) return el("p", { class: "prov muted", text: "만든 방법: 기록 없음" });
    const short = (x) => (x ? String(x).slice(0, 10) : "-");
    const parts = [`색인 ${short(p.index_key)}`, `말뭉치 ${short(p.corpus_version)}`, `인코더 ${p.encoder || "BM25만"}`,
      `생성 ${p.generator}${p.generator_model ? `(${p.generator_model})` : ""}`, `설정 ${short(p.settings_hash).slice(0, 8)}`];
    if (p.variant && p.variant !== "production") parts.push(p.variant);
    return el("p", { class: "prov muted", text: `만든 방법: ${parts.join(" · ")}`, title: JSON.stringify(p) });
  }

  function formatTimestamps(root = document) {
    root.querySelectorAll(".ts[data-ts]").forEach((e) => { e.textContent = fmtTs(e.dataset.ts); });
    root.querySelectorAll(".dur[data-s]").forEach((e) => { if (e.dataset.s) e.textContent = fmtDur(parseFloat(e.dataset.s)); });
  }
  document.addEventListener("DOMContentLoaded", () => formatTimestamps());

  return { api, el, csrf, fmtTs, fmtDur, parseTs, openArticle, CallView, formatTimestamps };
})();
