// Progressive enhancement for the dashboard; every page reads the same without it.
// - <time data-rel> shows "3 min ago" (absolute local time on hover);
// - [data-live="/url"] is refreshed from that URL every 5 s while the tab is visible;
// - #select-all ticks every job of the page, and the bulk buttons count the ticks;
// - button[data-copy] copies its text.
(function () {
  "use strict";
  function relative(ms) {
    var s = Math.round(ms / 1000), future = s < 0; s = Math.abs(s);
    var text = s < 45 ? s + " s" : s < 2700 ? Math.round(s / 60) + " min" : s < 79200 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
    return future ? "in " + text : text + " ago";
  }
  function times(root) {
    root.querySelectorAll("time[data-rel]").forEach(function (t) {
      var at = new Date(t.getAttribute("datetime"));
      if (isNaN(at)) return;
      t.textContent = relative(Date.now() - at.getTime());
      t.title = at.toLocaleString();
    });
  }
  function counts() {
    var n = document.querySelectorAll("input[name=id]:checked").length;
    document.querySelectorAll("[data-selected]").forEach(function (el) { el.textContent = n; });
  }
  function wire(root) {
    times(root);
    var all = root.querySelector("#select-all");
    if (all) all.addEventListener("change", function () {
      document.querySelectorAll("input[name=id]").forEach(function (box) { box.checked = all.checked; });
      counts();
    });
    root.querySelectorAll("input[name=id]").forEach(function (box) { box.addEventListener("change", counts); });
    root.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        e.preventDefault();
        if (navigator.clipboard) navigator.clipboard.writeText(b.getAttribute("data-copy"));
      });
    });
    counts();
  }
  function live(el) {
    var url = el.getAttribute("data-live"), busy = false;
    setInterval(function () {
      if (document.hidden || busy) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected || !r.ok) { if (r.redirected) location.reload(); return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null) return;
          el.innerHTML = html;
          el.setAttribute("data-refreshed", String(Date.now()));
          wire(el);
        })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 5000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    wire(document);
    document.querySelectorAll("[data-live]").forEach(live);
    setInterval(function () { times(document); }, 15000);
  });
})();
