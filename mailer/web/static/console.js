// Staff console: the few live parts (sending progress, segment count) with plain fetch().
"use strict";

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function fmt(n) { return new Intl.NumberFormat("cs-CZ").format(n); }

// Forms that ask before they act (erasure, cancel…): <form data-confirm="Opravdu…?">
// A form with a "send at once" box asks its own question when the box is ticked:
// <form data-confirm-now="…"> with <input name="immediately">.
document.addEventListener("submit", (ev) => {
  const form = ev.target;
  const now = form.querySelector && form.querySelector("input[name=immediately]");
  const msg = now && now.checked ? form.dataset.confirmNow : form.dataset && form.dataset.confirm;
  if (msg && !window.confirm(msg)) ev.preventDefault();
});

// Live progress of a run: <div data-progress-url="/console/runs/1/progress.json">
function startProgress(box) {
  const url = box.dataset.progressUrl;
  const bar = box.querySelector(".progress > div");
  async function tick() {
    let data;
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!resp.ok) throw new Error(resp.status);
      data = await resp.json();
    } catch (e) {
      setTimeout(tick, 5000);
      return;
    }
    for (const [key, value] of Object.entries(data.counts || {})) {
      box.querySelectorAll(`[data-count="${key}"]`).forEach((el) => { el.textContent = fmt(value); });
    }
    const status = box.querySelector("[data-run-status]");
    if (status) { status.textContent = data.status_label; status.className = "badge s-" + data.status; }
    if (bar) bar.style.width = (data.total ? Math.round(100 * data.done / data.total) : 0) + "%";
    const done = box.querySelector("[data-done]");
    if (done) done.textContent = fmt(data.done);
    if (!data.finished) {
      setTimeout(tick, 1500);
    } else {
      box.dataset.finished = "1";
      // Pause and cancel no longer apply to a finished run.
      document.querySelectorAll("[data-while-sending]").forEach((el) => { el.hidden = true; });
      const note = box.querySelector("[data-finished-note]");
      if (note) note.hidden = false;
    }
  }
  tick();
}

// Segment builder: every change asks the server for the count and a sample.
function startSegment(form) {
  const url = form.dataset.segmentPreview;
  const out = document.getElementById(form.dataset.segmentOutput);
  const refresh = debounce(async () => {
    const params = new URLSearchParams(new FormData(form));
    params.delete("csrf_token");
    out.classList.add("muted");
    try {
      const resp = await fetch(url + "?" + params, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const data = await resp.json();
      const count = out.querySelector("[data-segment-count]");
      const sample = out.querySelector("[data-segment-sample]");
      const error = out.querySelector("[data-segment-error]");
      error.textContent = data.error || "";
      error.style.display = data.error ? "" : "none";
      count.textContent = data.error ? "–" : fmt(data.count);
      sample.innerHTML = "";
      for (const row of data.sample || []) {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = "/console/contacts/" + row.id;
        a.textContent = row.email;
        li.append(a, document.createTextNode(" – " + row.library));
        sample.append(li);
      }
      const def = out.querySelector("[data-segment-toml]");
      if (def) def.value = data.toml || "";
    } finally {
      out.classList.remove("muted");
    }
  }, 250);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-progress-url]").forEach(startProgress);
  document.querySelectorAll("form[data-segment-preview]").forEach(startSegment);
});

// Tables on a phone are shown one card per row (console.css): each cell is labelled with its
// column's name, read from the table's header.
function labelTableCells(table) {
  const names = Array.from(table.querySelectorAll("thead th")).map((th) => th.textContent.trim());
  if (!names.length) return;
  table.querySelectorAll("tbody tr").forEach((tr) => {
    let column = 0;
    Array.from(tr.children).forEach((cell) => {
      if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", names[column] || "");
      column += cell.colSpan || 1;
    });
  });
}
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".table-wrap table").forEach(labelTableCells);
});
