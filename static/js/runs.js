// The run pages' few behaviours. Each page works without script; this only helps.
(function () {
  "use strict";

  // The upload page's drop zone: a file dropped anywhere on it goes into the
  // file input, as if chosen with the picker. Without script the picker works alone.
  document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
    var input = zone.querySelector("input[type=file]");
    var hint = zone.querySelector("[data-dropzone-hint]");
    if (!input) return;
    function show() {
      if (hint && input.files.length) hint.textContent = "Chosen: " + input.files[0].name;
    }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("is-over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("is-over");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        show();
      }
    });
    input.addEventListener("change", show);
  });

  // A confirmation (<details data-keep-open>) inside a fragment that polls
  // stays open when the poll replaces the fragment: it would otherwise close
  // under the person's pointer every 2 seconds. htmx itself moves the focus
  // to the new element with the focused one's id.
  var opened = [];
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var details = event.detail.target.querySelectorAll("details[data-keep-open][open]");
    opened = Array.prototype.map.call(details, function (element) { return element.id; });
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    opened.forEach(function (id) {
      var element = document.getElementById(id);
      if (element) element.open = true;
    });
    opened = [];
  });

  // A results row opens its job, as the link in it does; a click on the link
  // itself, or one that ends a text selection, is left alone.
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a") || String(window.getSelection())) return;
      window.location.assign(row.dataset.href);
    });
  });
  // The eval builder's checks: only the fields the chosen check reads are shown
  // (each names its checks in data-check-for). Without script all are shown,
  // each labelled with the checks that read it.
  document.querySelectorAll("select[data-check-type]").forEach(function (select) {
    var row = select.closest("fieldset");
    function show() {
      row.querySelectorAll("[data-check-for]").forEach(function (input) {
        var users = input.getAttribute("data-check-for").split(" ");
        input.closest(".field").hidden = users.indexOf(select.value) === -1;
      });
    }
    select.addEventListener("change", show);
    show();
  });
})();
