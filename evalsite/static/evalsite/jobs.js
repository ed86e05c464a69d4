// Keeps every job row on the page current: polls /api/jobs/<id>/ for rows that are not finished.
// Its words come in the page's language from the "job-strings" JSON (evalsite/_job_script.html): the
// statuses are the Job model's status labels, the ones the server writes into the rows; the progress message
// is the API's `message_text`, the stored message in the request's language (evalsite/job_messages.py).
(function () {
  "use strict";
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const script = document.currentScript;
  const reloadOnFinish = script && script.dataset.reloadOnFinish === "1";
  const T = JSON.parse(document.getElementById("job-strings").textContent);

  function render(row, job) {
    const bar = row.querySelector("progress");
    if (bar) {
      bar.max = job.progress_total || 1;
      bar.value = job.progress_total ? job.progress_done : (job.status === "succeeded" ? 1 : 0);
    }
    const text = row.querySelector(".progress-text");
    if (text) text.textContent = job.progress_done + (job.progress_total ? "/" + job.progress_total : "");
    const message = row.querySelector(".message");
    if (message) message.textContent = job.message_text || "";  // the message in the page's language
    const status = row.querySelector(".status");
    if (status) {
      status.innerHTML = "";
      const badge = document.createElement("span");
      badge.className = "badge " + job.status;
      badge.textContent = T.statuses[job.status] || job.status;
      status.appendChild(badge);
      if (job.is_stalled) {
        const stalled = document.createElement("span");
        stalled.className = "badge failed";
        stalled.textContent = row.dataset.stalledText || T.stalled;
        status.append(" ", stalled);
      }
    }
    row.dataset.status = job.status;
  }

  async function poll() {
    const rows = Array.from(document.querySelectorAll("tr[data-job]")).filter(
      (row) => !FINISHED.has(row.dataset.status));
    if (rows.length === 0) return;
    await Promise.all(rows.map(async (row) => {
      try {
        const response = await fetch("/api/jobs/" + row.dataset.job + "/", {headers: {Accept: "application/json"}});
        if (!response.ok) return;
        const job = await response.json();
        render(row, job);
        if (reloadOnFinish && FINISHED.has(job.status)) window.location.reload();
      } catch (e) { /* network blip: try again next round */ }
    }));
    window.setTimeout(poll, 1500);
  }
  window.setTimeout(poll, 1000);
})();
