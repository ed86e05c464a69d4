// The new-campaign form shows only the fields of the chosen kind: a field whose input carries
// data-kinds="pairwise rubric ..." is hidden (and disabled, so it is not sent) for any other kind.
(function () {
  "use strict";
  const form = document.querySelector("form.campaign-form");
  if (!form) return;
  const kind = form.querySelector("select[name=kind]");
  const fields = Array.from(form.querySelectorAll("[data-kinds]"));

  function show() {
    for (const input of fields) {
      const wanted = input.dataset.kinds.split(" ").includes(kind.value);
      const row = input.closest("p") || input;
      row.hidden = !wanted;
      input.disabled = !wanted;
    }
  }

  kind.addEventListener("change", show);
  show();
})();
