// Campaign editor: live preview (debounced), audience counts, problems beside their block,
// the personal-value picker, saved segments and image upload. Everything else is the form.
"use strict";

// A file field's chosen name in Czech words (the browser's own label may be English).
document.querySelectorAll("input.file-input").forEach((input) => {
  const shown = input.parentElement.querySelector("[data-file-name]");
  if (shown) input.addEventListener("change", () => { shown.textContent = input.files.length ? input.files[0].name : "zatím nevybrán"; });
});

(function () {
  const form = document.getElementById("editor-form");
  if (!form) return;
  const csrf = form.querySelector("input[name=csrf_token]");
  const readonly = form.dataset.readonly === "1";
  const frames = document.querySelectorAll("[data-preview-frame]");
  const state = document.querySelector("[data-preview-state]");
  const stepSelect = document.getElementById("p-step");
  const contactSelect = document.getElementById("p-contact");
  const fmt = (n) => new Intl.NumberFormat("cs-CZ").format(n);
  let lastField = null;
  let seq = 0;

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  function showProblems(data) {
    document.querySelectorAll("[data-problems-for]").forEach((list) => {
      const key = list.dataset.problemsFor;
      let items = [];
      if (key === "settings") items = data.problems || [];
      else if (key === "source") items = Object.values(data.blocks || {}).flat();
      else items = (data.blocks || {})[key] || [];
      list.replaceChildren(...items.map((text) => { const li = document.createElement("li"); li.textContent = text; return li; }));
      const block = list.closest(".block");
      if (block) block.classList.toggle("has-problem", items.length > 0);
    });
  }

  async function refresh() {
    if (readonly) return;
    const mine = ++seq;
    const body = new FormData(form);
    body.delete("op");
    body.set("preview_step", stepSelect ? stepSelect.value : "launch");
    body.set("preview_contact", contactSelect ? contactSelect.value : "");
    if (state) state.textContent = "Obnovuji náhled…";
    let data;
    try {
      const resp = await fetch(form.dataset.previewUrl, {
        method: "POST", body, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf ? csrf.value : "" },
      });
      if (!resp.ok) throw new Error(String(resp.status));
      data = await resp.json();
    } catch (e) {
      if (state) state.textContent = "Náhled se nepodařilo obnovit; zkuste to za chvíli.";
      return;
    }
    if (mine !== seq) return; // a newer request is on its way
    if (data.html) frames.forEach((f) => { f.srcdoc = data.html; });
    const subject = document.querySelector("[data-preview-subject]");
    if (subject && data.subject) subject.textContent = data.subject;
    for (const [step, n] of Object.entries(data.counts || {})) {
      document.querySelectorAll(`[data-count="${CSS.escape(step)}"]`).forEach((el) => {
        el.textContent = n === null ? "nelze spočítat" : fmt(n);
      });
    }
    if (contactSelect && data.contacts) {
      const chosen = contactSelect.value;
      const options = [new Option("první z příjemců", "")].concat(
        data.contacts.map((c) => new Option(c.label, String(c.id))));
      contactSelect.replaceChildren(...options);
      contactSelect.value = chosen;
      const testContact = document.querySelector("[data-test-contact]");
      if (testContact) testContact.value = chosen || (data.contacts[0] ? data.contacts[0].id : "");
    }
    const testStep = document.querySelector("[data-test-step]");
    if (testStep && stepSelect) testStep.value = stepSelect.value;
    showProblems(data);
    if (state) state.textContent = "Náhled odpovídá rozepsané verzi (zatím neuložené).";
    document.body.dataset.previewReady = String(mine);
  }

  const later = debounce(refresh, 400);
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  document.querySelectorAll("[data-preview-control]").forEach((el) => el.addEventListener("change", refresh));

  // The picker inserts a placeholder where the cursor was in the last text field.
  form.addEventListener("focusin", (ev) => { if (ev.target.matches("[data-md]")) lastField = ev.target; });
  document.querySelectorAll("[data-placeholder]").forEach((chip) => {
    chip.addEventListener("click", () => {
      const field = lastField || form.querySelector("textarea[data-md]");
      if (!field) return;
      const start = field.selectionStart ?? field.value.length;
      const end = field.selectionEnd ?? start;
      field.value = field.value.slice(0, start) + chip.dataset.placeholder + field.value.slice(end);
      field.focus();
      field.selectionStart = field.selectionEnd = start + chip.dataset.placeholder.length;
      later();
    });
  });

  // A saved segment fills the builder's fields.
  const saved = document.getElementById("f-saved");
  if (saved) {
    const segments = JSON.parse(saved.dataset.savedSegments || "[]");
    saved.addEventListener("change", () => {
      const found = segments.find((s) => String(s.id) === saved.value);
      if (!found) return;
      const box = form.querySelector(".segment-box");
      box.querySelectorAll("input, select").forEach((el) => {
        const value = found.state[el.name];
        if (el.type === "checkbox") el.checked = Array.isArray(value) ? value.includes(el.value) : value === true && el.value === "ano";
        else if (el.tagName === "SELECT") el.value = value || "";
        else el.value = Array.isArray(value) ? value.join(", ") : "";
      });
      box.open = true;
      refresh();
    });
  }

  // Uploading an image adds it to the library and picks it in its block.
  document.querySelectorAll("[data-upload-for]").forEach((input) => {
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      const block = input.closest(".block");
      const status = block.querySelector(".upload-status");
      const alt = document.getElementById(input.dataset.altFor);
      if (!file) return;
      if (!alt.value.trim()) {
        status.textContent = "Nejdřív napište popis obrázku (alternativní text), pak obrázek vyberte znovu.";
        input.value = "";
        alt.focus();
        return;
      }
      const body = new FormData();
      body.set("file", file);
      body.set("alt", alt.value);
      status.textContent = "Nahrávám…";
      const resp = await fetch("/console/media", {
        method: "POST", body, credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf ? csrf.value : "" },
      });
      const data = await resp.json().catch(() => ({ detail: "Obrázek se nepodařilo nahrát." }));
      if (!resp.ok) { status.textContent = data.detail; input.value = ""; return; }
      const select = document.getElementById(input.dataset.uploadFor);
      if (![...select.options].some((o) => o.value === data.filename)) {
        select.add(new Option(`${data.name} (${data.width} × ${data.height})`, data.filename));
      }
      select.value = data.filename;
      status.textContent = "Obrázek je nahraný a vložený.";
      refresh();
    });
  });

  // A reminder shows the field its kind of time needs: days, or a day and time.
  document.querySelectorAll("select[name$='-when']").forEach((select) => {
    const box = select.closest(".reminder");
    const show = () => {
      const days = box.querySelector("input[name$='-days']").closest(".field");
      const at = box.querySelector("input[name$='-at']").closest(".field");
      days.hidden = select.value === "at";
      at.hidden = select.value !== "at";
    };
    select.addEventListener("change", show);
    show();
  });

  refresh();
})();
