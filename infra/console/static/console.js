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
    var found = Array.prototype.slice.call(root.querySelectorAll("dialog[data-autoshow]"));
    if (root.matches && root.matches("dialog[data-autoshow]")) { found.push(root); }
    found.forEach(function (d) {
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

// Key page charts: each [data-chart="requests|errors|latency"] box is drawn with uPlot
// from the JSON data block named by its data-series (x in epoch seconds, UTC), resized
// with its box (390 px phones included); data-drawn holds the points drawn (the page's
// text summary and table carry the same numbers for those who cannot see a canvas).
(function () {
  "use strict";

  var KINDS = {
    requests: [{ label: "Requests", key: "requests", color: "--accent", bars: true }],
    errors: [
      { label: "4xx", key: "errors_4xx", color: "--warn" },
      { label: "5xx", key: "errors_5xx", color: "--danger" }
    ],
    latency: [{ label: "p95 (ms)", key: "p95_ms", color: "--info" }]
  };
  var HEIGHT = 200;

  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#0a58ca";
  }

  function widthOf(box) {
    return Math.max(160, Math.floor(box.clientWidth) - 16);
  }

  function draw(box) {
    var kind = KINDS[box.getAttribute("data-chart")];
    var source = document.getElementById(box.getAttribute("data-series") || "");
    if (!kind || !source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var series = [{ label: "From (UTC)" }];
    var columns = [data.x];
    kind.forEach(function (s) {
      var c = color(s.color);
      series.push({
        label: s.label,
        stroke: c,
        width: s.bars ? 0 : 2,
        fill: s.bars ? c + "99" : undefined,
        paths: s.bars ? uPlot.paths.bars({ size: [0.8, 48] }) : undefined,
        points: { show: !s.bars, size: 4 },
        spanGaps: false
      });
      columns.push(data[s.key]);
    });
    var plot = new uPlot({
      width: widthOf(box),
      height: HEIGHT,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [{}, { size: 56 }],
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      cursor: { drag: { x: false, y: false } }
    }, columns, box);
    box.setAttribute("data-drawn", String(data.x.length));
    var drawnWidth = widthOf(box);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var w = widthOf(box);
        if (w !== drawnWidth) {
          drawnWidth = w;
          window.requestAnimationFrame(function () { plot.setSize({ width: w, height: HEIGHT }); });
        }
      }).observe(box);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(draw);
  });
})();

// keys (API Keys page): a row menu closes when one of its actions is chosen, when
// another is opened, on Escape and on a click outside it. When the action's dialog
// closes or the keys section is swapped in after a change, focus goes back to the
// row's menu (or, if the row is gone, to the Create key button or the heading).
(function () {
  "use strict";
  var lastRow = null;

  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (menu !== except) { menu.removeAttribute("open"); }
    });
  }

  function restoreFocus() {
    var active = document.activeElement;
    if (active && active !== document.body) { return; }
    if (document.querySelector("dialog[open]")) { return; }
    var keys = document.getElementById("keys");
    if (!keys) { return; }
    var target = null;
    if (lastRow) {
      keys.querySelectorAll("tr[data-key-id]").forEach(function (row) {
        if (row.getAttribute("data-key-id") === lastRow) { target = row.querySelector("summary"); }
      });
    }
    target = target || document.getElementById("create-key") || document.querySelector("main h1");
    if (target) {
      if (!target.hasAttribute("tabindex") && target.tagName === "H1") { target.setAttribute("tabindex", "-1"); }
      target.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }
    var action = target.closest("[data-menu-action]");
    if (action) {
      var row = action.closest("tr[data-key-id]");
      lastRow = row ? row.getAttribute("data-key-id") : null;
      closeMenus(null);
      return;
    }
    if (target.closest("#create-key")) { lastRow = null; }
    closeMenus(target.closest("details.menu"));
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    var open = document.querySelector("details.menu[open]");
    if (open) {
      open.removeAttribute("open");
      var summary = open.querySelector("summary");
      if (summary) { summary.focus(); }
    }
  });

  document.addEventListener("close", function (event) {
    if (event.target instanceof HTMLDialogElement && event.target.classList.contains("key-dialog")) {
      setTimeout(restoreFocus, 0);
    }
  }, true);

  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target instanceof Element && event.target.id === "keys") { restoreFocus(); }
  });
})();

// alerts: the Add Alert form shows only the fields of the chosen kind (the server
// ignores the others anyway: without this script every field shows).
(function () {
  "use strict";

  function sync(form) {
    var select = form.querySelector("[data-kind-select]");
    if (!select) { return; }
    form.querySelectorAll("[data-kinds]").forEach(function (el) {
      el.hidden = el.getAttribute("data-kinds").split(" ").indexOf(select.value) < 0;
    });
  }

  function syncAll(root) {
    if (root.matches && root.matches("form[data-rule-form]")) { sync(root); }
    root.querySelectorAll("form[data-rule-form]").forEach(sync);
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof Element && target.matches("[data-kind-select]")) {
      var form = target.closest("form");
      if (form) { sync(form); }
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    syncAll(event.target instanceof Element ? event.target : document);
  });
  document.addEventListener("DOMContentLoaded", function () { syncAll(document); });
})();
