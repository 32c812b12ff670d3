// The survey report's table and lazy thumbnails: vanilla JS, inlined, no network.
// Rows come from <script type="application/json">, so names are data, never markup: every cell is
// set through textContent. Only one page of rows is in the DOM, so a 50,000-photo night stays usable.
(function () {
  "use strict";
  var rowsEl = document.getElementById("report-rows");
  var thumbsEl = document.getElementById("report-thumbs");
  var thumbs = thumbsEl ? JSON.parse(thumbsEl.textContent) : [];
  // C: column positions in each row array (kept in step with report_page.table_rows)
  var C = { name: 0, uri: 1, asset: 2, zone: 3, grade: 4, p: 5, area: 6, boxes: 7, prio: 8, reason: 9, href: 10, thumb: 11, captured: 12, flagged: 13 };
  var PAGE = 100;

  function lazyImages() {
    var imgs = document.querySelectorAll("img[data-thumb]");
    function load(img) {
      var i = Number(img.getAttribute("data-thumb"));
      if (thumbs[i]) { img.src = thumbs[i]; }
      img.removeAttribute("data-thumb");
    }
    if (!("IntersectionObserver" in window)) { imgs.forEach(load); return; }
    var io = new IntersectionObserver(function (seen) {
      seen.forEach(function (e) { if (e.isIntersecting) { io.unobserve(e.target); load(e.target); } });
    }, { rootMargin: "600px" });
    imgs.forEach(function (img) { io.observe(img); });
  }

  function gradeBadge(g) {
    var s = document.createElement("span");
    s.className = "grade" + (g !== null && g >= 6 && g <= 8 ? " light" : "");
    s.textContent = g === null ? "–" : String(g);
    s.style.background = g === null ? "#9aa0a6" : COLOURS[Math.max(0, Math.min(10, g))];
    return s;
  }
  var COLOURS = JSON.parse(document.getElementById("report-colours").textContent);

  function table() {
    if (!rowsEl) { return; }
    var rows = JSON.parse(rowsEl.textContent);
    var body = document.querySelector("#photo-table tbody");
    var count = document.getElementById("photo-count");
    var pageLabel = document.getElementById("page-label");
    var f = {
      q: document.getElementById("f-search"), asset: document.getElementById("f-asset"),
      zone: document.getElementById("f-zone"), grade: document.getElementById("f-grade"),
      rust: document.getElementById("f-rust"), review: document.getElementById("f-review")
    };
    var sortKey = "grade", sortDir = 1, page = 0, shown = rows;

    function cmp(a, b) {
      var x = a[C[sortKey]], y = b[C[sortKey]];
      if (x === y) { return a[C.p] === b[C.p] ? (a[C.uri] < b[C.uri] ? -1 : 1) : b[C.p] - a[C.p]; }
      if (x === null || x === "") { return 1; }  // no value: last, whichever the direction
      if (y === null || y === "") { return -1; }
      return (x < y ? -1 : 1) * sortDir;
    }
    function apply() {
      var q = f.q.value.trim().toLowerCase(), asset = f.asset.value, zone = f.zone.value;
      var grade = f.grade.value === "" ? null : Number(f.grade.value);
      shown = rows.filter(function (r) {
        if (asset && r[C.asset] !== asset) { return false; }
        if (zone && r[C.zone] !== zone) { return false; }
        if (grade !== null && (r[C.grade] === null || r[C.grade] > grade)) { return false; }
        if (f.rust.checked && !r[C.flagged]) { return false; }
        if (f.review.checked && r[C.prio] === null) { return false; }
        if (q && (r[C.uri] + " " + r[C.asset] + " " + r[C.zone]).toLowerCase().indexOf(q) < 0) { return false; }
        return true;
      });
      shown.sort(cmp);
      page = 0;
      draw();
    }
    function cell(tr, value, cls) {
      var td = document.createElement("td");
      if (cls) { td.className = cls; }
      if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value; }
      tr.appendChild(td);
      return td;
    }
    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / PAGE));
      page = Math.min(page, pages - 1);
      var frag = document.createDocumentFragment();
      shown.slice(page * PAGE, page * PAGE + PAGE).forEach(function (r) {
        var tr = document.createElement("tr");
        var thumb = "";
        if (r[C.thumb] >= 0 && thumbs[r[C.thumb]]) {
          thumb = document.createElement("img");
          thumb.loading = "lazy"; thumb.alt = ""; thumb.src = thumbs[r[C.thumb]];
        }
        cell(tr, thumb);
        var name = r[C.name];
        if (r[C.href]) {
          name = document.createElement("a");
          name.href = r[C.href]; name.textContent = r[C.name]; name.title = r[C.uri];
        }
        cell(tr, name, "name");
        cell(tr, r[C.asset]); cell(tr, r[C.zone]);
        cell(tr, gradeBadge(r[C.grade]), "num");
        cell(tr, r[C.p].toFixed(3), "num");
        cell(tr, r[C.area] === null ? "–" : r[C.area].toFixed(2) + " %", "num");
        cell(tr, r[C.boxes] === null ? "–" : String(r[C.boxes]), "num");
        cell(tr, r[C.prio] === null ? "" : r[C.prio].toFixed(2) + " " + r[C.reason], "reason");
        cell(tr, r[C.captured], "num");
        tr.setAttribute("data-uri", r[C.uri]);
        frag.appendChild(tr);
      });
      body.replaceChildren(frag);
      count.textContent = shown.length + " of " + rows.length + " photos";
      pageLabel.textContent = "page " + (page + 1) + " of " + pages;
      document.getElementById("page-prev").disabled = page === 0;
      document.getElementById("page-next").disabled = page >= pages - 1;
    }
    document.querySelectorAll("#photo-table th[data-key]").forEach(function (th) {
      th.querySelector("button").addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        sortDir = key === sortKey ? -sortDir : (key === "p" || key === "area" || key === "prio" || key === "boxes" ? -1 : 1);
        sortKey = key;
        document.querySelectorAll("#photo-table th[data-key]").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        shown.sort(cmp); page = 0; draw();
      });
    });
    [f.q, f.asset, f.zone, f.grade, f.rust, f.review].forEach(function (el) {
      el.addEventListener(el.tagName === "INPUT" && el.type === "search" ? "input" : "change", apply);
    });
    document.getElementById("page-prev").addEventListener("click", function () { page -= 1; draw(); });
    document.getElementById("page-next").addEventListener("click", function () { page += 1; draw(); });
    document.querySelectorAll("a[data-filter-asset]").forEach(function (a) {
      a.addEventListener("click", function () {
        f.asset.value = a.getAttribute("data-filter-asset");
        f.zone.value = a.getAttribute("data-filter-zone");
        apply();
      });
    });
    apply();
  }

  table();
  lazyImages();
})();
