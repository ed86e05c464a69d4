// Keeps a generation run's page current: polls /api/generation-runs/<id>/ for the run's progress and
// /items/ for the denoising steps of each video shown, until the run has finished.
(function () {
  "use strict";
  const OPEN = new Set(["queued", "running"]);
  const row = document.getElementById("run-progress");
  if (!row) return;
  const base = "/api/generation-runs/" + row.dataset.run + "/";
  // The counts' sentence in the page's language, with %(done)s and the like to fill (generation/run_detail.html).
  const T = JSON.parse(document.getElementById("run-strings").textContent);

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (match, name) => (name in values ? String(values[name]) : match));
  }

  function renderRun(run) {
    const p = run.progress;
    row.querySelector("progress").value = p.percent;
    row.querySelector(".progress-text").textContent = p.percent + "%";
    const c = p.counts;
    row.querySelector(".counts").textContent = format(T.counts, c);
  }

  function renderItem(item) {
    const tr = document.querySelector('tr[data-item="' + item.id + '"]');
    if (!tr) return false;
    const changed = tr.dataset.status !== item.status;
    tr.querySelector(".steps").textContent = item.steps_done + (item.steps_total ? "/" + item.steps_total : "");
    return changed && !OPEN.has(item.status);
  }

  async function poll() {
    try {
      const response = await fetch(base, {headers: {Accept: "application/json"}});
      if (response.ok) {
        const run = await response.json();
        renderRun(run);
        if (!OPEN.has(run.status)) { if (OPEN.has(row.dataset.status)) window.location.reload(); return; }
        const items = await fetch(base + "items/?status=running&limit=100", {headers: {Accept: "application/json"}});
        if (items.ok) (await items.json()).results.forEach(renderItem);
        const open = Array.from(document.querySelectorAll("tr[data-item]")).filter((tr) => OPEN.has(tr.dataset.status));
        if (open.length && run.progress.counts.running === 0 && run.progress.counts.queued === 0) window.location.reload();
      }
    } catch (e) { /* network blip: try again next round */ }
    window.setTimeout(poll, 1500);
  }
  window.setTimeout(poll, 1000);
})();
