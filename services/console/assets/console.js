// Cairn console: progressive enhancement only; every page works without this file.
"use strict";
(() => {
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  // Confirm before destructive actions (forms with data-confirm).
  document.addEventListener("submit", (ev) => {
    const msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // Selects that submit their form when changed (project switcher, filters).
  $$("select[data-autosubmit]").forEach((s) => s.addEventListener("change", () => s.form.submit()));

  // Live previews: [data-preview=url] re-renders from the form's current values as you type.
  $$("[data-preview]").forEach((el) => {
    const form = el.closest("form");
    const target = el.dataset.target ? document.getElementById(el.dataset.target) : el;
    let timer = null, seq = 0;
    const update = () => {
      const params = new URLSearchParams(new FormData(form));
      params.delete("_csrf");
      const mine = ++seq;
      const url = el.dataset.preview + (el.dataset.preview.includes("?") ? "&" : "?") + params.toString();
      fetch(url, { credentials: "same-origin" })
        .then((r) => r.text())
        .then((html) => { if (mine === seq) { target.innerHTML = html; target.dataset.updated = String(mine); } })
        .catch(() => {});
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 250); });
    form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(update, 50); });
    update();
  });

  // Live job: log lines and the summary panel from Server-Sent Events.
  $$("[data-events]").forEach((log) => {
    const summary = document.getElementById("job-summary");
    const es = new EventSource(log.dataset.events);
    const append = (html) => {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.insertAdjacentHTML("beforeend", html);
      if (atEnd) log.scrollTop = log.scrollHeight;
    };
    es.addEventListener("log", (e) => append(e.data));
    es.addEventListener("job", (e) => { if (summary) summary.innerHTML = e.data; });
    es.addEventListener("end", (e) => { if (summary) summary.innerHTML = e.data; es.close(); log.dataset.ended = "1"; });
  });

  // Sections that refresh themselves every N seconds (data-poll=N, needs an id).
  $$("[data-poll][id]").forEach((el) => {
    const every = Math.max(2, Number(el.dataset.poll) || 5) * 1000;
    setInterval(() => {
      if (document.hidden) return;
      fetch(location.href, { credentials: "same-origin" })
        .then((r) => r.text())
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (fresh) el.innerHTML = fresh.innerHTML;
        })
        .catch(() => {});
    }, every);
  });
})();
