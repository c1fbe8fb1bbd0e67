"""The page's inline stylesheet and script (no CDN, no framework: the file works offline).

The script only sorts and filters tables, opens a layer's detail row on click (its
spectrum, pre-drawn as SVG text in a JSON block and parsed on first use) and links
chart markers to table rows. It never builds markup from data other than that SVG,
which the Python side escaped.
"""

from __future__ import annotations

CSS = """
:root{--ok:#1a7f37;--under:#b7791f;--over:#c62828;--traps:#9c27b0;--na:#8a8f98;
--untouched:#8a8f98;--band:#e3f4e6;--ink:#1f2328;--mute:#656d76;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
margin:0 auto;max-width:1280px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--mute);font-size:12.5px;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;background:var(--bg);
min-width:110px}
.card b{display:block;font-size:19px}.card span{color:var(--mute);font-size:12px}
.card.v-ok b{color:var(--ok)}.card.v-under-trained b{color:var(--under)}
.card.v-over-trained b{color:var(--over)}.card.v-traps b{color:var(--traps)}
.card.v-failed b,.card.v-untouched b{color:var(--na)}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0}figcaption{color:var(--mute);font-size:12px;max-width:640px}
svg.chart{background:#fff;border:1px solid var(--line);border-radius:4px;max-width:100%;
height:auto}
svg text{font-size:10.5px;fill:var(--ink)}svg text.tick{fill:var(--mute)}
svg text.axis{font-size:11.5px;text-anchor:middle}
svg text.tx{text-anchor:middle}svg text.ty{text-anchor:end;dominant-baseline:middle}
svg text.mark{font-size:10px;fill:var(--mute)}
.frame{fill:none;stroke:var(--line)}.grid{stroke:#eef1f4;fill:none}
.band{fill:var(--band)}.bulk{fill:#dbe9fb;opacity:.8}.phase{opacity:.35}
.phase-0{fill:#ffe7c2}.phase-1{fill:#cfe3ff}.phase-2{fill:#ffc9c9}.phase-3{fill:#d4f5dc}
.phase-x{fill:#e0d7ff}
.untouched-col{fill:#eceef1}
circle.v-ok,rect.v-ok{fill:var(--ok)}circle.v-under-trained,rect.v-under-trained{fill:var(--under)}
circle.v-over-trained,rect.v-over-trained{fill:var(--over)}
circle.v-traps,rect.v-traps{fill:var(--traps)}
circle.v-unknown,rect.v-unknown,circle.v-low-rank,rect.v-low-rank,circle.v-failed,rect.v-failed{fill:var(--na)}
circle.v-untouched,rect.v-untouched{fill:#fff;stroke:var(--na)}
circle.base{fill:#fff;stroke:#57606a}circle.dup{fill:none;stroke:#6f42c1;stroke-width:2}
circle.trap{fill:var(--over)}circle[data-row]{cursor:pointer}
circle[data-row]:hover{stroke:#000;stroke-width:1.5}
path.esd{fill:none;stroke:#0969da;stroke-width:1.6}
path.shuf{fill:none;stroke:#e36209;stroke-width:1.3;stroke-dasharray:4 2}
path.fit{fill:none;stroke:var(--over);stroke-width:1.6}
path.series{fill:none;stroke:#0969da;stroke-width:1.6}
path.scalar{fill:none;stroke:#1a7f37;stroke-width:1.6}
rect.esd{fill:#0969da}rect.shuf{fill:#e36209}rect.fit{fill:var(--over)}rect.bulk{fill:#dbe9fb}
rect.band{fill:var(--band)}rect.base{fill:#fff;stroke:#57606a}rect.dup{fill:none;stroke:#6f42c1}
rect.alert{fill:var(--over)}rect.trap{fill:var(--over)}
.xmin line{stroke:var(--over);stroke-dasharray:2 2}.edge line{stroke:#0969da;stroke-dasharray:5 3}
.redge line{stroke:#e36209;stroke-dasharray:5 3}
.alert line{stroke:var(--over);stroke-width:1.2;stroke-dasharray:3 2}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:6px 0}
.controls input[type=search]{min-width:260px;padding:3px 6px}
.tablewrap{overflow:auto;max-height:75vh;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;font-size:12.5px;width:max-content;min-width:100%}
th,td{padding:3px 7px;border-bottom:1px solid #eef1f4;text-align:right;white-space:nowrap}
th{position:sticky;top:0;background:var(--bg);cursor:pointer;user-select:none;z-index:1}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.s,th.s{text-align:left}td.name{max-width:420px;overflow:hidden;text-overflow:ellipsis}
td.reason{white-space:normal;min-width:260px;text-align:left;color:var(--mute)}
table.expandable tbody tr:not(.detail){cursor:pointer}
tbody tr:not(.detail):hover{background:#f3f8ff}tr.open{background:#eaf2ff}
tr.detail td{text-align:left;background:#fbfcfd;white-space:normal}
.spectrum-detail{position:sticky;left:8px;max-width:min(1180px,92vw)}
td.v-ok{color:var(--ok)}td.v-under-trained{color:var(--under)}td.v-over-trained{color:var(--over)}
td.v-traps{color:var(--traps)}td.v-unknown,td.v-low-rank,td.v-failed,td.v-untouched{color:var(--na)}
tr.dup td.name{box-shadow:inset 3px 0 #6f42c1}
.gate{border-radius:6px;padding:8px 12px;margin:10px 0;border:1px solid var(--line)}
.gate.pass{background:#e8f5ea}.gate.fail{background:#fdecea}
.gate ul{margin:4px 0 0;padding-left:20px}
.note{color:var(--mute);font-size:12.5px}
ul.compact{columns:2;font-size:12.5px}
"""

JS = r"""
(function () {
  "use strict";
  var spectra = null;
  function details() {
    if (spectra === null) {
      var el = document.getElementById("spectra-data");
      spectra = el ? JSON.parse(el.textContent) : {};
    }
    return spectra;
  }
  function dataRows(table) {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (r) {
      return !r.classList.contains("detail");
    });
  }
  function closeAll(table) {
    Array.prototype.slice.call(table.querySelectorAll("tr.detail")).forEach(function (d) {
      d.remove();
    });
    Array.prototype.forEach.call(table.querySelectorAll("tr.open"), function (r) {
      r.classList.remove("open");
      r.setAttribute("aria-expanded", "false");
    });
  }
  function cellValue(row, i) {
    var t = row.cells[i].textContent.trim();
    var n = t === "" || t === "—" ? NaN : Number(t);
    return { t: t, n: n };
  }
  function sortBy(table, th, i) {
    closeAll(table);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(th.parentNode.cells, function (c) {
      c.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    var rows = dataRows(table).map(function (r) {
      return { r: r, v: cellValue(r, i) };
    });
    rows.sort(function (a, b) {
      var an = !isNaN(a.v.n), bn = !isNaN(b.v.n);
      if (an && bn) return (a.v.n - b.v.n) * dir;
      if (an !== bn) return an ? -1 : 1;
      return a.v.t.localeCompare(b.v.t) * dir;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (x) { frag.appendChild(x.r); });
    table.tBodies[0].appendChild(frag);
  }
  function filter(table, box) {
    var q = box.querySelector("input[type=search]").value.toLowerCase();
    var sel = box.querySelector("select");
    var v = sel ? sel.value : "";
    var cb = box.querySelector("input[type=checkbox]");
    var p = cb ? cb.checked : false;
    var rows = dataRows(table), shown = 0;
    rows.forEach(function (r) {
      var ok = (!q || (r.getAttribute("data-name") || "").toLowerCase().indexOf(q) >= 0) &&
        (!v || r.getAttribute("data-verdict") === v) &&
        (!p || r.getAttribute("data-problem") === "1");
      r.hidden = !ok;
      var d = r.nextElementSibling;
      if (d && d.classList.contains("detail")) d.hidden = !ok;
      if (ok) shown += 1;
    });
    box.querySelector(".count").textContent = shown + " of " + rows.length + " rows";
  }
  function toggle(row) {
    var next = row.nextElementSibling;
    if (next && next.classList.contains("detail")) {
      next.remove();
      row.classList.remove("open");
      row.setAttribute("aria-expanded", "false");
      return;
    }
    var d = document.createElement("tr");
    d.className = "detail";
    var td = document.createElement("td");
    td.colSpan = row.cells.length;
    var html = details()[row.getAttribute("data-row")];
    if (html) {
      td.innerHTML = html;
    } else {
      td.textContent = "No spectrum kept for this layer: it was not analysed, or the " +
        "scan ran without keep_spectra (the CLI keeps spectra with --html).";
    }
    d.appendChild(td);
    row.parentNode.insertBefore(d, row.nextSibling);
    row.classList.add("open");
    row.setAttribute("aria-expanded", "true");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, th, i); });
    });
    if (table.classList.contains("expandable")) {
      table.tBodies[0].addEventListener("click", function (ev) {
        var row = ev.target.closest("tr");
        if (row && !row.classList.contains("detail")) toggle(row);
      });
    }
    var box = document.querySelector('.controls[data-for="' + table.id + '"]');
    if (box) {
      box.addEventListener("input", function () { filter(table, box); });
      box.addEventListener("change", function () { filter(table, box); });
      filter(table, box);
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("svg [data-row]"), function (el) {
    el.addEventListener("click", function () {
      var table = document.querySelector("table.expandable") ||
        document.querySelector("table.sortable");
      if (!table) return;
      var row = table.querySelector('tbody tr[data-row="' + el.getAttribute("data-row") + '"]');
      if (!row) return;
      row.hidden = false;
      if (table.classList.contains("expandable") && !row.classList.contains("open")) toggle(row);
      row.scrollIntoView({ block: "center" });
    });
  });
  var heat = document.getElementById("heat-data");
  var heatSvg = document.querySelector("svg.heat");
  var info = document.getElementById("heat-info");
  if (heat && heatSvg && info) {
    var h = JSON.parse(heat.textContent);
    var base = info.textContent;
    heatSvg.addEventListener("mousemove", function (ev) {
      var box = heatSvg.getBoundingClientRect(), vb = heatSvg.viewBox.baseVal;
      var x = (ev.clientX - box.left) * vb.width / box.width;
      var y = (ev.clientY - box.top) * vb.height / box.height;
      var p = h.px;
      if (x < p[0] || x > p[1] || y < p[2] || y > p[3]) { info.textContent = base; return; }
      var step = h.xr[0] + (x - p[0]) / (p[1] - p[0]) * (h.xr[1] - h.xr[0]);
      var n = h.names.length;
      var row = Math.min(n - 1, Math.floor((y - p[2]) / (p[3] - p[2]) * n));
      var col = 0;
      h.steps.forEach(function (s, i) {
        if (Math.abs(s - step) < Math.abs(h.steps[col] - step)) col = i;
      });
      var a = h.a[row][col];
      info.textContent = h.names[row] + " at step " + h.steps[col] + ": alpha " +
        (a === null ? "not recorded" : a);
    });
  }
})();
"""
