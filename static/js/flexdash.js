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

  // Relative times ("12 seconds ago", "in 8 s": the relative_time filter's
  // <time data-relative data-offset>) tick every second, also once polling
  // has stopped. data-offset is the seconds from the server's now to the
  // moment; counting from when an element is first seen keeps the browser's
  // own clock out of it. Each swap brings fresh elements, counted afresh.
  // The older <span data-countdown="seconds"> counts down the same way.
  function plural(count, unit) {
    return count + " " + unit + (count === 1 ? "" : "s") + " ago";
  }
  var WORDS = {
    ago: function (seconds) {
      if (seconds < 1) return "just now";
      if (seconds >= 86400) return plural(Math.floor(seconds / 86400), "day");
      if (seconds >= 3600) return plural(Math.floor(seconds / 3600), "hour");
      if (seconds >= 60) return plural(Math.floor(seconds / 60), "minute");
      return plural(seconds, "second");
    },
    countdown: function (seconds) {
      if (seconds <= 0) return "due now";
      if (seconds < 60) return "in " + seconds + " s";
      return "in " + Math.floor(seconds / 60) + " min " + String(seconds % 60).padStart(2, "0") + " s";
    },
    left: function (seconds) {
      if (seconds < 60) return "in " + Math.max(seconds, 0) + " s";
      var minutes = Math.ceil(seconds / 60);
      if (minutes < 60) return "in " + minutes + " min";
      var hours = Math.floor(minutes / 60);
      minutes %= 60;
      if (hours < 48) return "in " + hours + " h" + (minutes ? " " + minutes + " min" : "");
      var days = Math.floor(hours / 24);
      hours %= 24;
      return "in " + days + " d" + (hours ? " " + hours + " h" : "");
    },
  };
  // For the browser tests, which check these words against the server's.
  window.FlexDash = { relativeWords: function (style, seconds) { return WORDS[style](seconds); } };

  function startRelativeTimes() {
    var now = Date.now();
    document.querySelectorAll("[data-relative]:not([data-at])").forEach(function (element) {
      element.dataset.at = String(now + Number(element.dataset.offset) * 1000);
    });
    document.querySelectorAll("[data-countdown]:not([data-at])").forEach(function (element) {
      element.dataset.relative = "countdown";
      element.dataset.at = String(now + Number(element.dataset.countdown) * 1000);
    });
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-at]").forEach(function (element) {
      var style = element.dataset.relative;
      var toMoment = (Number(element.dataset.at) - now) / 1000;
      var seconds = style === "ago" ? Math.max(0, Math.floor(-toMoment)) : Math.max(0, Math.ceil(toMoment));
      var words = WORDS[style](seconds);
      if (element.textContent !== words) element.textContent = words;
    });
  }
  startRelativeTimes();
  document.body.addEventListener("htmx:afterSettle", startRelativeTimes);
  window.setInterval(tick, 1000);
})();
