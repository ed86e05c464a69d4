// Live curves of a training run: polls /api/training-runs/<id>/metrics/ and draws one plotly chart per
// figure (train every step; validation where held out), until the run has finished.
document.addEventListener("DOMContentLoaded", () => {
  "use strict";
  const box = document.getElementById("training-curves");
  const status = document.getElementById("training-status");
  if (!box || !window.Plotly) return;
  const OPEN = new Set(["queued", "running"]);
  // The legend's and axis' words in the page's language (data attributes of #training-curves).
  const words = { train: box.dataset.trainLabel, validation: box.dataset.validationLabel, step: box.dataset.stepLabel };

  function draw(curves) {
    const names = Object.keys(curves.train || {}).sort();
    document.getElementById("training-curves-empty").hidden = names.length > 0;
    for (const name of names) {
      let div = box.querySelector('[data-figure="' + name + '"]');
      if (!div) {
        div = document.createElement("div");
        div.dataset.figure = name;
        div.style.height = "260px";
        box.appendChild(div);
      }
      const series = [{ name: words.train, x: curves.train[name].map((p) => p[0]), y: curves.train[name].map((p) => p[1]), mode: "lines" }];
      const held = (curves.validation || {})[name];
      if (held) series.push({ name: words.validation, x: held.map((p) => p[0]), y: held.map((p) => p[1]), mode: "lines+markers" });
      window.Plotly.react(div, series, { title: { text: name }, xaxis: { title: { text: words.step } }, margin: { t: 40 } }, { responsive: true, displaylogo: false });
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.metrics, { headers: { Accept: "application/json" } });
      if (response.ok) draw(await response.json());
      const detail = await fetch(box.dataset.detail, { headers: { Accept: "application/json" } });
      if (detail.ok) {
        const run = await detail.json();
        if (!OPEN.has(run.status)) { if (OPEN.has(status.dataset.status)) window.location.reload(); return; }
      }
    } catch (e) { /* network blip: try again */ }
    window.setTimeout(poll, 3000);
  }
  poll();
});
