// pgbulk: row selection, "select all matching", and the bulk modal. No build step.
(function () {
  "use strict";
  const $ = (selector) => document.querySelector(selector);
  const rows = () => Array.from(document.querySelectorAll(".pgbulk-row"));

  function state() {
    const all = $("#pgbulk-select-all");
    return { allMatching: all && all.value === "1", matching: Number($("#pgbulk-toolbar")?.dataset.matching || 0) };
  }

  function refresh() {
    const toolbar = $("#pgbulk-toolbar");
    if (!toolbar) return;
    const { allMatching, matching } = state();
    const checked = rows().filter((box) => box.checked);
    const excluded = rows().filter((box) => !box.checked).map((box) => box.value);
    $("#pgbulk-excluded").innerHTML = allMatching
      ? excluded.map((pk) => `<input type="hidden" name="exclude" value="${pk}">`).join("")
      : "";
    const count = allMatching ? matching - excluded.length : checked.length;
    $("#pgbulk-selected-count").textContent = count;
    const page = $(".pgbulk-page");
    if (page) page.checked = rows().length > 0 && checked.length === rows().length;
    $("#pgbulk-select-matching").hidden = allMatching || !page?.checked || matching <= rows().length;
    $("#pgbulk-clear").hidden = count === 0;
    for (const button of document.querySelectorAll("#pgbulk-edit, #pgbulk-delete, .pgbulk-task")) {
      button.disabled = count === 0;
    }
    for (const box of rows()) box.closest("tr")?.classList.toggle("pgbulk-selected", box.checked);
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches(".pgbulk-page")) {
      for (const box of rows()) box.checked = event.target.checked;
      if (!event.target.checked) $("#pgbulk-select-all").value = "0";
    }
    if (event.target.matches(".pgbulk-row, .pgbulk-page")) refresh();
  });

  document.addEventListener("click", (event) => {
    if (event.target.matches("#pgbulk-select-matching")) {
      $("#pgbulk-select-all").value = "1";
      for (const box of rows()) box.checked = true;
      refresh();
    } else if (event.target.matches("#pgbulk-clear")) {
      $("#pgbulk-select-all").value = "0";
      for (const box of rows()) box.checked = false;
      refresh();
    }
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "pgbulk-modal-body") {
      const modal = $("#pgbulk-modal");
      if (!modal.open) modal.showModal();
    }
    refresh();
  });

  // When a job is done the list refreshes; keep the selection only if it still applies.
  document.body.addEventListener("pgbulk-done", () => {
    $("#pgbulk-select-all") && ($("#pgbulk-select-all").value = "0");
  });

  document.addEventListener("DOMContentLoaded", refresh);
})();
