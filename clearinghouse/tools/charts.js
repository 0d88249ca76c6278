/* Clearinghouse charts: small, dependency-free SVG charts for offline HTML reports.
 *
 * Reusable: a page embeds this file inline and declares charts as
 *   <div class="chart" data-chart="line" data-spec="ID"></div>
 *   <script type="application/json" id="ID">{...spec...}</script>
 * then calls CHCharts.renderAll(). Specs:
 *   line: {title, yLabel, xType: "time"|"number", height,
 *          series: [{name, color, points: [[x, y], ...], step}],
 *          markers: [{x, y, kind: "liquidation"|"backstop"|"adl"|"cover", label}]}
 *   bars: {title, valueLabel, bars: [{label, value, note, highlight}]}
 * Every chart is an <svg class="ch-svg"> with data-points="N" (drawn points) so tests can check it rendered.
 */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  var MARKER_COLORS = { liquidation: "#d62728", backstop: "#ff7f0e", adl: "#9467bd", cover: "#2ca02c" };

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, String(attrs[k])); }
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    var t = el("text", Object.assign({ x: x, y: y }, attrs || {}), parent);
    t.textContent = content;
    return t;
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = (count * step) / span;
    if (err <= 0.15) step *= 10; else if (err <= 0.35) step *= 5; else if (err <= 0.75) step *= 2;
    var ticks = [], start = Math.ceil(lo / step) * step;
    for (var v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }

  function fmtNumber(v) {
    var a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e4) return String(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(3);
  }

  var TIME_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5,
    72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];

  function timeTicks(lo, hi, count) {
    var span = Math.max(hi - lo, 1), step = TIME_STEPS[TIME_STEPS.length - 1];
    for (var i = 0; i < TIME_STEPS.length; i++) { if (span / TIME_STEPS[i] <= count) { step = TIME_STEPS[i]; break; } }
    var ticks = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) ticks.push(v);
    return { ticks: ticks, step: step };
  }

  function fmtTime(ms, step) {
    var iso = new Date(ms).toISOString();
    if (step >= 864e5) return iso.substring(0, 10);
    if (step >= 6e4) return iso.substring(11, 16);
    if (step >= 1e3) return iso.substring(11, 19);
    return iso.substring(17, 23) + "s";
  }

  function frame(container, spec, width, height) {
    var svg = el("svg", { class: "ch-svg", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    if (spec.title) el("title", {}, svg).textContent = spec.title;
    container.appendChild(svg);
    return svg;
  }

  function line(container, spec) {
    var width = Math.max(container.clientWidth || 0, 480), height = spec.height || 260;
    var m = { left: 64, right: 40, top: 28, bottom: 40 };
    var svg = frame(container, spec, width, height);
    var series = spec.series || [], markers = spec.markers || [];
    var xs = [], ys = [], drawn = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    markers.forEach(function (mk) { xs.push(mk.x); if (mk.y !== null && mk.y !== undefined) ys.push(mk.y); });
    if (!xs.length) { text(svg, width / 2, height / 2, "no data", { "text-anchor": "middle", class: "ch-empty" }); svg.setAttribute("data-points", "0"); return svg; }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (spec.zeroBased && y0 > 0) y0 = 0;
    var pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.05 || 1; y0 -= pad; y1 += pad;
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var W = width - m.left - m.right, H = height - m.top - m.bottom;
    function sx(v) { return m.left + ((v - x0) / (x1 - x0)) * W; }
    function sy(v) { return m.top + H - ((v - y0) / (y1 - y0)) * H; }
    var axes = el("g", { class: "ch-axes" }, svg);
    niceTicks(y0, y1, 5).forEach(function (t) {
      el("line", { x1: m.left, x2: m.left + W, y1: sy(t), y2: sy(t), class: "ch-grid" }, axes);
      text(axes, m.left - 6, sy(t) + 4, fmtNumber(t), { "text-anchor": "end", class: "ch-tick" });
    });
    var isTime = spec.xType !== "number", nx = Math.max(2, Math.floor(W / 110));
    var xt = isTime ? timeTicks(x0, x1, nx) : { ticks: niceTicks(x0, x1, nx), step: 0 };
    xt.ticks.forEach(function (t) {
      el("line", { x1: sx(t), x2: sx(t), y1: m.top + H, y2: m.top + H + 4, class: "ch-axis" }, axes);
      text(axes, sx(t), m.top + H + 16, isTime ? fmtTime(t, xt.step) : fmtNumber(t), { "text-anchor": "middle", class: "ch-tick" });
    });
    text(axes, m.left + W, m.top + H + 30, isTime ? "UTC" : (spec.xLabel || ""), { "text-anchor": "end", class: "ch-label" });
    el("line", { x1: m.left, x2: m.left + W, y1: m.top + H, y2: m.top + H, class: "ch-axis" }, axes);
    el("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + H, class: "ch-axis" }, axes);
    if (spec.yLabel) text(axes, 8, m.top - 10, spec.yLabel, { class: "ch-label" });
    if (spec.title) text(axes, m.left, 16, spec.title, { class: "ch-title" });
    var plot = el("g", { class: "ch-series" }, svg);
    series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length], d = "";
      s.points.forEach(function (p, j) {
        var X = sx(p[0]).toFixed(1), Y = sy(p[1]).toFixed(1);
        if (j === 0) d += "M" + X + "," + Y;
        else if (s.step) d += "H" + X + "V" + Y;
        else d += "L" + X + "," + Y;
      });
      if (s.points.length === 1) {
        el("circle", { cx: sx(s.points[0][0]), cy: sy(s.points[0][1]), r: 3, fill: color }, plot);
      }
      var path = el("path", { d: d, fill: "none", stroke: color, "stroke-width": s.width || 1.8, class: "ch-line", "data-series": s.name }, plot);
      if (s.dash) path.setAttribute("stroke-dasharray", s.dash);
      drawn += s.points.length;
    });
    var mg = el("g", { class: "ch-markers" }, svg);
    markers.forEach(function (mk) {
      var color = MARKER_COLORS[mk.kind] || "#333", X = sx(mk.x);
      var Y = mk.y === null || mk.y === undefined ? m.top + 8 : sy(mk.y);
      el("line", { x1: X, x2: X, y1: m.top, y2: m.top + H, stroke: color, "stroke-opacity": 0.25, "stroke-dasharray": "3,3" }, mg);
      var shape = mk.kind === "adl" ? el("rect", { x: X - 4, y: Y - 4, width: 8, height: 8, fill: color, class: "ch-marker", "data-kind": mk.kind }, mg)
        : el("circle", { cx: X, cy: Y, r: 4.5, fill: color, class: "ch-marker", "data-kind": mk.kind }, mg);
      el("title", {}, shape).textContent = mk.label || mk.kind;
      drawn += 1;
    });
    var lg = el("g", { class: "ch-legend" }, svg), lx = m.left + 8;
    series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      el("rect", { x: lx, y: m.top + 4, width: 10, height: 3, fill: color }, lg);
      var t = text(lg, lx + 14, m.top + 9, s.name, { class: "ch-legend-text" });
      lx += 24 + 7 * s.name.length;
    });
    var kinds = {};
    markers.forEach(function (mk) { kinds[mk.kind] = true; });
    Object.keys(kinds).forEach(function (k) {
      el("circle", { cx: lx + 4, cy: m.top + 6, r: 4, fill: MARKER_COLORS[k] || "#333" }, lg);
      text(lg, lx + 12, m.top + 9, k, { class: "ch-legend-text" });
      lx += 24 + 7 * k.length;
    });
    svg.setAttribute("data-points", String(drawn));
    return svg;
  }

  function bars(container, spec) {
    var list = spec.bars || [], rowH = 22, width = Math.max(container.clientWidth || 0, 480);
    var m = { left: 200, right: 170, top: spec.title ? 26 : 8, bottom: 8 };
    var height = m.top + m.bottom + rowH * Math.max(list.length, 1);
    var svg = frame(container, spec, width, height);
    if (spec.title) text(svg, 8, 16, spec.title, { class: "ch-title" });
    if (!list.length) { text(svg, width / 2, height / 2, "no entries", { "text-anchor": "middle", class: "ch-empty" }); svg.setAttribute("data-points", "0"); return svg; }
    var max = Math.max.apply(null, list.map(function (b) { return Math.abs(b.value); })) || 1;
    var W = width - m.left - m.right;
    list.forEach(function (b, i) {
      var y = m.top + i * rowH, w = Math.max(1, (Math.abs(b.value) / max) * W);
      text(svg, m.left - 8, y + 15, b.label, { "text-anchor": "end", class: "ch-tick" });
      var r = el("rect", { x: m.left, y: y + 4, width: w, height: rowH - 8, class: b.highlight ? "ch-bar ch-bar-hi" : "ch-bar" }, svg);
      el("title", {}, r).textContent = b.note || String(b.value);
      text(svg, m.left + w + 6, y + 15, (spec.format === "raw" ? String(b.value) : fmtNumber(b.value)) + (b.note ? "  " + b.note : ""), { class: "ch-tick" });
    });
    svg.setAttribute("data-points", String(list.length));
    return svg;
  }

  var KINDS = { line: line, bars: bars };

  function renderAll(root) {
    var nodes = (root || document).querySelectorAll("[data-chart]"), count = 0;
    Array.prototype.forEach.call(nodes, function (node) {
      var kind = node.getAttribute("data-chart"), specNode = document.getElementById(node.getAttribute("data-spec"));
      if (!KINDS[kind] || !specNode) throw new Error("chart " + kind + ": missing renderer or spec");
      node.textContent = "";
      KINDS[kind](node, JSON.parse(specNode.textContent));
      node.setAttribute("data-rendered", "1");
      count += 1;
    });
    document.documentElement.setAttribute("data-charts-rendered", String(count));
    return count;
  }

  window.CHCharts = { line: line, bars: bars, renderAll: renderAll, palette: PALETTE };
})();
