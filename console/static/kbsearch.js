/* Regulation search in the top bar (counselors, supervisors, QA): Ctrl+K focuses it, results come
   while typing after a 300 ms pause, a click opens the full article (the version shown). The live
   page preselects the district a caller named (Dasan.kbSearch.setDistrict). Text is inserted with
   textContent only; highlights are <mark> elements built from the server's span offsets. */
"use strict";
(() => {
  const { api, el, openArticle } = Dasan;
  const $ = (id) => document.getElementById(id);
  const box = $("kb-search");
  if (!box) return;
  const input = $("kb-q"), panel = $("kb-panel"), list = $("kb-results"), status = $("kb-status");
  const district = $("kb-district"), asOf = $("kb-asof"), version = $("kb-version");
  let timer = null, seq = 0, districtTouched = false;

  function highlighted(sentence, spans) {
    const p = el("p", { class: "kb-sentence" });
    let at = 0;
    for (const [s, e] of spans || []) {
      if (s < at || e > sentence.length) continue;
      if (s > at) p.append(sentence.slice(at, s));
      p.append(el("mark", { text: sentence.slice(s, e) }));
      at = e;
    }
    if (at < sentence.length) p.append(sentence.slice(at));
    return p;
  }

  function render(answer) {
    list.replaceChildren();
    version.textContent = answer.index_key ? `지식베이스 ${answer.index_key.slice(0, 8)}` : "";
    if (!answer.results.length) { status.textContent = "일치하는 조문이 없습니다"; return; }
    status.textContent = `${answer.results.length}건${answer.district ? ` · ${answer.district} 조례 우선` : ""}`;
    for (const r of answer.results) {
      const place = r.applies_in === "대한민국" ? "법령" : r.applies_in.replace("서울특별시", "서울시").trim() + " 조례";
      const head = el("div", { class: "kb-head" },
        el("strong", { text: `${r.law_name} ${r.article_no}` }),
        r.title ? el("span", { text: ` ${r.title}` }) : null);
      const meta = el("div", { class: "kb-meta" },
        el("span", { class: `badge${r.local ? " local" : ""}`, text: place }),
        el("small", { class: "muted", text: ` 시행 ${r.effective_date || "미상"}` }));
      const item = el("button", { type: "button", class: "kb-item", "data-record-id": r.record_id,
        "data-effective-date": r.effective_date || "",
        onclick: () => openArticle(r.record_id, r.citation, r.effective_date) },
        head, highlighted(r.sentence, r.highlights), meta);
      list.append(el("li", {}, item));
    }
  }

  async function run() {
    const q = input.value.trim();
    if (!q) { list.replaceChildren(); status.textContent = ""; return; }
    const mine = ++seq;
    const params = new URLSearchParams({ q });
    if (district.value) params.set("district", district.value);
    if (asOf.value) params.set("as_of", asOf.value);
    status.textContent = "검색 중…";
    try {
      const answer = await api(`/api/search?${params}`);
      if (mine === seq) render(answer);
    } catch (e) {
      if (mine === seq) { list.replaceChildren(); status.textContent = `검색하지 못했습니다 (${e.message})`; }
    }
  }
  const later = () => { clearTimeout(timer); timer = setTimeout(run, 300); };

  input.addEventListener("input", () => { panel.hidden = false; later(); });
  let versionShown = false;
  async function showVersion() {
    if (versionShown) return;
    versionShown = true;
    try {
      const kb = await api("/api/kb");
      if (!version.textContent) version.textContent = kb.available ? `지식베이스 ${kb.index_key.slice(0, 8)}` : "상담 도우미 연결 안 됨";
    } catch (e) { versionShown = false; }
  }
  input.addEventListener("focus", () => { showVersion(); if (input.value.trim()) panel.hidden = false; });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { clearTimeout(timer); run(); }
    if (ev.key === "Escape") { panel.hidden = true; input.blur(); }
  });
  district.addEventListener("change", () => { districtTouched = true; if (input.value.trim()) run(); });
  asOf.addEventListener("change", () => { if (input.value.trim()) run(); });
  document.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && (ev.key === "k" || ev.key === "K")) {
      ev.preventDefault();
      input.focus();
      input.select();
      if (input.value.trim()) panel.hidden = false;
    }
  });
  document.addEventListener("click", (ev) => {
    if (!box.contains(ev.target) && !ev.target.closest("#article-modal")) panel.hidden = true;
  });

  Dasan.kbSearch = {
    /** The call named a district: preselect it (unless the counselor chose one by hand). */
    setDistrict(name) {
      if (districtTouched || !name || district.value === name) return;
      if (![...district.options].some((o) => o.value === name)) return;
      district.value = name;
      if (input.value.trim()) later();
    },
    reset() { if (!districtTouched) district.value = ""; },
  };
})();
