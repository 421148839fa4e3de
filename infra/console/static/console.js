// keypulse console: the little behaviour the pages need (no inline scripts: the CSP
// allows only this file and the vendor files).
//  - [data-copy="ID"] buttons copy the text of element ID and say so;
//  - [data-open="ID"] buttons open <dialog id=ID>; [data-close] buttons close theirs;
//  - dialogs marked data-forget-on-close remove themselves when closed (a secret shown
//    once leaves the page for good);
//  - htmx:afterSwap opens any dialog the swapped content marked data-autoshow.
(function () {
  "use strict";

  function say(button, text) {
    var old = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", old);
    button.textContent = text;
    setTimeout(function () { button.textContent = old; }, 2000);
  }

  function showDialogs(root) {
    root.querySelectorAll("dialog[data-autoshow]").forEach(function (d) {
      if (!d.open) { d.showModal(); }
      d.removeAttribute("data-autoshow");
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }
    var copy = target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim()).then(
          function () { say(copy, "Copied"); },
          function () { say(copy, "Copy failed: select and copy it"); }
        );
      }
      return;
    }
    var opener = target.closest("[data-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open"));
      if (dialog && !dialog.open) { dialog.showModal(); }
      var menu = opener.closest("details[open]");
      if (menu) { menu.removeAttribute("open"); }
      return;
    }
    var closer = target.closest("[data-close]");
    if (closer) {
      var own = closer.closest("dialog");
      if (own) { own.close(); }
    }
  });

  document.addEventListener("close", function (event) {
    var d = event.target;
    if (d instanceof HTMLDialogElement && d.hasAttribute("data-forget-on-close")) {
      d.remove();
    }
  }, true);

  document.addEventListener("htmx:afterSwap", function (event) {
    showDialogs(event.target instanceof Element ? event.target : document);
  });
  document.addEventListener("DOMContentLoaded", function () { showDialogs(document); });
})();
