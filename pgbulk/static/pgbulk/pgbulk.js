// pgbulk: row selection, "select all matching", the bulk modal, confirmations and
// announcements. No build step. Builds DOM nodes (never HTML strings from record keys).
(function () {
  "use strict";
  if (window.pgbulk) return; // included by the base template and by the toolbar
  window.pgbulk = {};

  const $ = (selector) => document.querySelector(selector);
  const rows = () => Array.from(document.querySelectorAll(".pgbulk-row"));
  let opener = null; // the button that opened the modal, to give focus back to

  // --- selection ------------------------------------------------------------------------

  function refresh() {
    for (const form of document.querySelectorAll(".pgbulk-form")) blockApply(form);
    const toolbar = $("#pgbulk-toolbar");
    if (!toolbar) return;
    const all = $("#pgbulk-select-all");
    const allMatching = all.value === "1";
    const matching = Number(toolbar.dataset.matching || 0);
    const checked = rows().filter((box) => box.checked);
    const unchecked = rows().filter((box) => !box.checked);
    const excluded = $("#pgbulk-excluded");
    excluded.replaceChildren(...(allMatching ? unchecked : []).map((box) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "exclude";
      input.value = box.value;
      return input;
    }));
    const count = allMatching ? matching - unchecked.length : checked.length;
    $("#pgbulk-selected-count").textContent = count.toLocaleString(document.documentElement.lang || undefined);
    const page = $(".pgbulk-page");
    if (page) page.checked = rows().length > 0 && unchecked.length === 0;
    const more = $("#pgbulk-select-matching");
    if (more) more.hidden = allMatching || !page?.checked || matching <= rows().length;
    const clear = $("#pgbulk-clear");
    if (clear) clear.hidden = count === 0;
    for (const button of document.querySelectorAll(".pgbulk-bulk-action")) {
      button.disabled = count === 0;
    }
    for (const box of rows()) {
      const row = box.closest("tr");
      if (!row) continue;
      row.classList.toggle("pgbulk-selected", box.checked);
      row.classList.toggle("pgbulk-held-row", box.dataset.heldBy !== undefined);
    }
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches(".pgbulk-page")) {
      for (const box of rows()) box.checked = target.checked;
      if (!target.checked) $("#pgbulk-select-all").value = "0";
    }
    if (target.matches(".pgbulk-row, .pgbulk-page")) refresh();
    tickChangedField(target);
    dropPreview(target);
  });
  document.addEventListener("input", (event) => {
    tickChangedField(event.target);
    dropPreview(event.target);
  });

  // A preview shows what the form said when it was asked for: an edit makes it stale.
  function dropPreview(target) {
    const form = target.closest && target.closest(".pgbulk-form");
    const preview = form && form.querySelector(".pgbulk-preview");
    if (!preview) return;
    preview.replaceChildren();
    blockApply(form);
  }

  // Apply waits while the form's preview says it would be refused or change nothing.
  function blockApply(form) {
    const blocked = form.querySelector(".pgbulk-preview-result[data-apply-blocked]") !== null;
    for (const button of form.querySelectorAll("[data-pgbulk-apply]")) button.disabled = blocked;
  }

  // Changing a value in the bulk form ticks its "Change ..." box.
  function tickChangedField(target) {
    const field = target.closest && target.closest(".pgbulk-field");
    if (!field || target.closest(".pgbulk-toggle")) return;
    const toggle = field.querySelector(".pgbulk-toggle input[type=checkbox]");
    if (toggle && !toggle.checked) toggle.checked = true;
  }

  // --- buttons and confirmations ----------------------------------------------------------

  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.closest("#pgbulk-select-matching")) {
      $("#pgbulk-select-all").value = "1";
      for (const box of rows()) box.checked = true;
      refresh();
    } else if (target.closest("#pgbulk-clear")) {
      $("#pgbulk-select-all").value = "0";
      for (const box of rows()) box.checked = false;
      refresh();
    } else if (target.closest("[data-pgbulk-close]")) {
      target.closest("dialog")?.close();
    }
  });

  // Forms with data-pgbulk-confirm ask first (capture: before htmx sends them).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.dataset && form.dataset.pgbulkConfirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // --- the modal ----------------------------------------------------------------------------

  document.addEventListener("htmx:beforeRequest", (event) => {
    const source = event.detail.elt;
    if (source.closest && source.closest("#pgbulk-toolbar")) opener = source;
  });

  function focusFirstField(modal) {
    // The first field, or what the content asks for (a confirmation's safe answer).
    const body = modal.querySelector("#pgbulk-modal-body");
    const first = body.querySelector("[data-pgbulk-focus]") || body.querySelector(
      "input:not([type=hidden]):not([disabled]), select, textarea, button:not([disabled]), a[href]");
    (first || modal.querySelector(".pgbulk-close"))?.focus();
  }

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id === "pgbulk-modal-body") {
      const modal = $("#pgbulk-modal");
      if (!modal.open) modal.showModal();
      focusFirstField(modal);
    }
    refresh();
  });

  document.addEventListener("close", (event) => {
    if (event.target.id !== "pgbulk-modal") return;
    const running = event.target.querySelector(".pgbulk-progress[hx-get]");
    if (running) toBanner(running);
    if (opener && document.contains(opener)) opener.focus();
  }, true);

  // A job still going when its modal closes goes on in the active-jobs banner, as after
  // a reload (the modal stops following it).
  function toBanner(progress) {
    const toolbar = $("#pgbulk-toolbar");
    const url = progress.getAttribute("hx-get").replace(/view=modal\b/, "view=compact");
    $("#pgbulk-modal-body").replaceChildren();
    if (!toolbar || !window.htmx) return;
    let banner = $("#pgbulk-active-jobs");
    if (!banner) {
      banner = document.createElement("section");
      banner.id = "pgbulk-active-jobs";
      banner.className = "pgbulk-banner";
      banner.setAttribute("aria-label", toolbar.dataset.bannerOne || "");
      const title = document.createElement("h2");
      title.className = "pgbulk-banner-title";
      banner.appendChild(title);
      toolbar.before(banner);
    }
    const job = progress.dataset.job;
    if (banner.querySelector(`.pgbulk-progress[data-job="${job}"], [data-pgbulk-banner-job="${job}"]`)) return;
    const slot = document.createElement("div");
    slot.className = "pgbulk-banner-job";
    slot.dataset.pgbulkBannerJob = job;
    const live = document.createElement("div");
    live.setAttribute("hx-get", url);
    live.setAttribute("hx-trigger", "load");
    live.setAttribute("hx-swap", "outerHTML");
    slot.appendChild(live);
    banner.appendChild(slot);
    const count = banner.querySelectorAll(".pgbulk-banner-job").length;
    const one = toolbar.dataset.bannerOne, many = toolbar.dataset.bannerMany;
    const title = banner.querySelector(".pgbulk-banner-title");
    if (title && one && many) {  // an overridden toolbar may not give them: keep the title
      title.textContent = count === 1 ? one : many.replace("{n}", count.toLocaleString());
    }
    window.htmx.process(slot);
  }

  // pgbulk's own fragments answer 4xx with a message: swap them in like a 200, and keep
  // django-htmx's DEBUG error page handler (which replaces the whole page) away from them.
  const ours = (element) => element && element.closest && element.closest(
    "#pgbulk-modal, .pgbulk-progress, #pgbulk-toolbar");
  document.addEventListener("htmx:beforeOnLoad", (event) => {
    const status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && (ours(event.detail.elt) || ours(event.detail.target))) {
      event.stopPropagation();
    }
  }, true);
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    if (status >= 400 && status < 500 && ours(event.detail.target)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // --- announcements ------------------------------------------------------------------------

  function liveRegion() {
    let region = $("#pgbulk-live");
    if (!region) {
      region = document.createElement("div");
      region.id = "pgbulk-live";
      region.className = "pgbulk-sr-only";
      region.setAttribute("aria-live", "polite");
      region.setAttribute("role", "status");
      document.body.appendChild(region);
    }
    return region;
  }

  // A job is over: announce it; the list refreshes, so a "select all" no longer applies.
  document.addEventListener("pgbulk-done", (event) => {
    const text = event.detail && event.detail.text;
    if (text) liveRegion().textContent = text;
    const all = $("#pgbulk-select-all");
    if (all) all.value = "0";
  });

  function start() {
    liveRegion();
    refresh();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
  // Back/forward and restored form state: derive the toolbar from the boxes again.
  window.addEventListener("pageshow", refresh);
  window.addEventListener("load", refresh);
})();
