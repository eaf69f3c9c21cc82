// FlexDash's own few lines of script; htmx does the rest.
(function () {
  "use strict";
  var SIGNAL_KEY = "flexdash:jobs-changed";

  // Fragments that stopped polling (nothing active) listen for "jobs-changed"
  // on <body>. It fires when this tab comes back into view, and when another
  // tab of this site submitted or restarted a job (a localStorage write is
  // seen by every other tab of the same origin as a "storage" event).
  function announceChange() {
    htmx.trigger(document.body, "jobs-changed");
  }
  window.addEventListener("storage", function (event) {
    if (event.key === SIGNAL_KEY) announceChange();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") announceChange();
  });
  if (document.querySelector("[data-jobs-changed]")) {
    try {
      localStorage.setItem(SIGNAL_KEY, String(Date.now()));
    } catch (error) {
      // Storage disabled: other tabs catch up when they are next shown.
    }
  }

  // A poll after the session expired is answered by the login page (via a
  // redirect the browser follows silently): go there instead of pasting the
  // login form into a fragment.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var loginUrl = document.body.dataset.loginUrl;
    var responseUrl = event.detail.xhr.responseURL;
    if (loginUrl && responseUrl && new URL(responseUrl).pathname === loginUrl) {
      event.detail.shouldSwap = false;
      window.location.assign(responseUrl);
    }
  });

  // Countdowns tick every second between polls; each poll re-renders them
  // from the server's clock, so the two never drift apart for long.
  function startCountdowns() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]:not([data-deadline])").forEach(function (element) {
      element.dataset.deadline = String(now + Number(element.dataset.countdown) * 1000);
    });
  }
  function formatSeconds(seconds) {
    if (seconds <= 0) return "due now";
    if (seconds < 60) return "in " + seconds + " s";
    var minutes = Math.floor(seconds / 60);
    return "in " + minutes + " min " + String(seconds % 60).padStart(2, "0") + " s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (element) {
      var left = Math.max(0, Math.ceil((Number(element.dataset.deadline) - now) / 1000));
      element.textContent = formatSeconds(left);
    });
  }
  startCountdowns();
  document.body.addEventListener("htmx:afterSettle", startCountdowns);
  window.setInterval(tick, 1000);
})();
