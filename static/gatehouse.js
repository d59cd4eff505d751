// Gatehouse's only script besides htmx: behaviour driven by data attributes, so templates carry no
// inline JavaScript (the CSP is default-src 'self').
(function () {
  "use strict";

  var FIELDS = "input:not([type=hidden]), select, textarea";

  // A polite live region: screen readers say what changed without moving the reader's focus.
  // Emptied first, so the same sentence twice in a row is still spoken.
  function announce(text) {
    var region = document.getElementById("announcer");
    if (!region) return;
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  // The error summary takes focus so keyboard and screen-reader users start from the list of problems.
  function focusErrorSummary(within) {
    var summary = within.id === "error-summary" ? within : within.querySelector("#error-summary");
    if (!summary) return false;
    summary.focus();
    var heading = summary.querySelector("h2");
    var count = summary.querySelectorAll("li").length;
    announce(heading ? heading.textContent.trim() : count + " errors");
    return true;
  }

  // ----- focus across HTMX swaps -----
  // A swap replaces the control that triggered it; without this, focus falls back to the page body.
  // Only requests made by a form control count: polls and links must not move anyone's focus.
  var pending = new WeakMap();

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt.matches || !elt.matches(FIELDS)) return;
    var active = document.activeElement;
    pending.set(evt.detail.xhr, {
      focusId: active && active.id && elt.contains(active) ? active.id : elt.id,
      targetId: evt.detail.target && evt.detail.target.id
    });
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var request = pending.get(evt.detail.xhr);
    pending.delete(evt.detail.xhr);
    if (evt.detail.elt.querySelector && focusErrorSummary(evt.detail.elt)) return;
    if (!request) return;
    var section = (request.targetId && document.getElementById(request.targetId)) || evt.detail.elt;
    var control = (request.focusId && document.getElementById(request.focusId)) || section.querySelector(FIELDS);
    if (control) control.focus();
    var count = section.querySelectorAll(FIELDS).length;
    announce("Form updated: " + count + " field" + (count === 1 ? "" : "s"));
  });

  // ----- copy buttons: <button type="button" data-copy="TEXT"> -----
  function copyWithTextarea(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    document.body.removeChild(area);
    return done;
  }

  function copy(button) {
    var text = button.getAttribute("data-copy");
    var said = function () { announce("Copied"); button.focus(); };
    var failed = function () { announce("Could not copy: select the text and copy it yourself"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(said, function () { (copyWithTextarea(text) ? said : failed)(); });
    } else {
      (copyWithTextarea(text) ? said : failed)();
    }
  }

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("button[data-copy]");
    if (button) copy(button);
  });

  // ----- confirmations: <form data-confirm="question"> -----
  // The question lives in an HTML attribute (escaped by the template), never inside script text.
  // Capture phase: a refusal stops the submit before htmx or the browser acts on it.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      evt.preventDefault();
      evt.stopPropagation();
    }
  }, true);

  // ----- refused saves shown in place: inside [data-swap-refusals] a 400 or 409 answer is the form
  // again with its errors beside the fields, so it replaces the target as a success would.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr.status;
    if ((status === 400 || status === 409) && evt.detail.elt.closest && evt.detail.elt.closest("[data-swap-refusals]")) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // ----- the top menu: collapsed behind a button on small screens (CSS keys on aria-expanded) -----
  function setUpMenu() {
    var toggle = document.querySelector(".menu-toggle");
    if (!toggle) return;
    toggle.hidden = false;  // without this script the menu simply stays open
    toggle.addEventListener("click", function () {
      toggle.setAttribute("aria-expanded", String(toggle.getAttribute("aria-expanded") !== "true"));
    });
  }

  setUpMenu();
  focusErrorSummary(document.body);
})();
