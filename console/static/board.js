/* Supervisor live board: ongoing calls, refreshed every 2 s. */
"use strict";
(() => {
  const { api, el, fmtDur } = Dasan;
  const tbody = document.querySelector("#board tbody");
  async function refresh() {
    try {
      const rows = await api("/api/board");
      document.getElementById("board-count").textContent = `${rows.length}건`;
      if (!rows.length) { tbody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "진행 중인 통화가 없습니다." }))); return; }
      tbody.replaceChildren(...rows.map((r) => {
        const tr = el("tr", { class: "clickable", "data-call-id": r.call_id },
          el("td", { text: r.counselor_id || "-" }), el("td", { text: r.team || "-" }),
          el("td", { text: fmtDur(r.elapsed_s) }), el("td", { class: "clip", text: r.topic || r.category || "" }),
          el("td", { class: "clip", text: r.latest_suggestion || "" }),
          el("td", {}, r.source === "scripted" ? el("span", { class: "badge scripted", text: "스크립트" }) : "ASR"),
          el("td", {}, el("a", { href: `/calls/${encodeURIComponent(r.call_id)}`, text: "열기" })));
        tr.addEventListener("click", () => { location.href = `/calls/${encodeURIComponent(r.call_id)}`; });
        return tr;
      }));
    } catch (e) {
      document.getElementById("board-count").textContent = `갱신 실패 (${e.message}) — 재시도 중`;
    }
  }
  refresh();
  setInterval(refresh, 2000);
})();
