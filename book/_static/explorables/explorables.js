/* nfr-book explorables: interactive figures that run in the static HTML, offline, with no kernel.
   A page places <div class="nfr-explorable" data-explorable="NAME"></div>; this script loads
   NAME-data.js from its own folder (written by `python -m nfr.explorables`) and draws the widget.
   No libraries, no network: plain DOM and SVG. */
(function () {
  "use strict";
  var here = document.currentScript ? document.currentScript.src : "";
  var base = here.slice(0, here.lastIndexOf("/") + 1);
  var SVG = "http://www.w3.org/2000/svg";
  /* the book's method colours (matplotlib's default cycle in the order chapters draw them) */
  var COLOURS = {grad: "#1f77b4", gbp: "#ff7f0e", rectgrad: "#2ca02c", zplus: "#d62728"};

  function el(tag, attrs, parent, text) {
    var e = tag.indexOf("svg:") === 0 ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function fmt(v, n) { return (v < 0 ? "\u2212" : "") + Math.abs(v).toFixed(n); }

  /* radio buttons: options [[value, label]], calls onchange(value) */
  function radios(parent, name, title, options, value, onchange) {
    var box = el("fieldset", {"class": "nfr-ex-radios"}, parent);
    el("legend", {}, box, title);
    options.forEach(function (o) {
      var lab = el("label", {}, box);
      var inp = el("input", {type: "radio", name: name, value: String(o[0])}, lab);
      if (String(o[0]) === String(value)) inp.checked = true;
      inp.addEventListener("change", function () { if (inp.checked) onchange(o[0]); });
      lab.appendChild(document.createTextNode(" " + o[1]));
    });
    return box;
  }

  function slider(parent, name, title, n, value, onchange) {
    var lab = el("label", {"class": "nfr-ex-slider"}, parent);
    lab.appendChild(document.createTextNode(title + " "));
    var inp = el("input", {type: "range", name: name, min: "0", max: String(n - 1), step: "1", value: String(value)}, lab);
    inp.addEventListener("input", function () { onchange(parseInt(inp.value, 10)); });
    return inp;
  }

  /* a line chart: xs (positions), series [{key, label, y, lo, hi, dash, marker}], marker at xs[at] */
  function chart(parent, opt) {
    var W = 560, H = 300, m = {l: 58, r: 26, t: 12, b: 46};
    var svg = el("svg:svg", {viewBox: "0 0 " + W + " " + H, "class": "nfr-ex-chart", role: "img",
                             "aria-label": opt.aria}, parent);
    var x0 = opt.xs[0], x1 = opt.xs[opt.xs.length - 1];
    var ylo = opt.ylim[0], yhi = opt.ylim[1];
    var fy = opt.logy ? function (v) { return Math.log10(Math.max(v, Math.pow(10, ylo))); } : function (v) { return v; };
    function X(v) { return m.l + (v - x0) / (x1 - x0) * (W - m.l - m.r); }
    function Y(v) { var t = (fy(v) - ylo) / (yhi - ylo); return H - m.b - Math.min(Math.max(t, 0), 1) * (H - m.t - m.b); }
    el("svg:rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, fill: "none", stroke: "#999"}, svg);
    opt.yticks.forEach(function (t) {
      var yy = opt.logy ? H - m.b - (t - ylo) / (yhi - ylo) * (H - m.t - m.b) : Y(t);
      el("svg:line", {x1: m.l, x2: W - m.r, y1: yy, y2: yy, stroke: "#eee"}, svg);
      el("svg:text", {x: m.l - 6, y: yy + 4, "text-anchor": "end", "font-size": 13}, svg,
         opt.logy ? "1e" + t : String(t));
    });
    opt.xs.forEach(function (v, i) {
      if (opt.xticks && opt.xticks.indexOf(i) < 0) return;
      el("svg:text", {x: X(v), y: H - m.b + 18, "text-anchor": "middle", "font-size": 13}, svg, opt.xlabels[i]);
    });
    el("svg:text", {x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle", "font-size": 14}, svg, opt.xtitle);
    el("svg:text", {x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", "font-size": 14,
                    transform: "rotate(-90 14 " + (m.t + H - m.b) / 2 + ")"}, svg, opt.ytitle);
    opt.series.forEach(function (s) {
      var c = s.colour || COLOURS[s.key] || "#000";
      if (s.lo && s.hi) {
        var pts = opt.xs.map(function (v, i) { return X(v) + "," + Y(s.hi[i]); })
          .concat(opt.xs.slice().reverse().map(function (v, j) { var i = opt.xs.length - 1 - j; return X(v) + "," + Y(s.lo[i]); }));
        el("svg:polygon", {points: pts.join(" "), fill: c, "fill-opacity": 0.15, stroke: "none"}, svg);
      }
      var d = opt.xs.map(function (v, i) { return (i ? "L" : "M") + X(v).toFixed(1) + "," + Y(s.y[i]).toFixed(1); }).join(" ");
      el("svg:path", {d: d, fill: "none", stroke: c, "stroke-width": s.dash ? 1.5 : 2,
                      "stroke-dasharray": s.dash ? "6 4" : "none"}, svg);
      if (s.marker !== false) opt.xs.forEach(function (v, i) {
        el("svg:circle", {cx: X(v), cy: Y(s.y[i]), r: 3, fill: c}, svg);
      });
    });
    var xm = X(opt.xs[opt.at]);
    el("svg:line", {x1: xm, x2: xm, y1: m.t, y2: H - m.b, stroke: "#333", "stroke-width": 1, "class": "nfr-ex-marker"}, svg);
    /* legend, top left inside the frame */
    var ly = opt.legendBottom ? H - m.b - 8 - 17 * (opt.series.length - 1) : m.t + 16;
    opt.series.forEach(function (s) {
      var c = s.colour || COLOURS[s.key] || "#000";
      el("svg:line", {x1: m.l + 10, x2: m.l + 34, y1: ly - 4, y2: ly - 4, stroke: c, "stroke-width": 2,
                      "stroke-dasharray": s.dash ? "6 4" : "none"}, svg);
      el("svg:text", {x: m.l + 40, y: ly, "font-size": 13}, svg, s.label);
      ly += 17;
    });
    return svg;
  }

  function table(parent, head, rows) {
    var t = el("table", {"class": "nfr-ex-readout"}, parent);
    var tr = el("tr", {}, el("thead", {}, t));
    head.forEach(function (h) { el("th", {}, tr, h); });
    var tb = el("tbody", {}, t);
    rows.forEach(function (r) { var row = el("tr", {}, tb); r.forEach(function (v) { el("td", {}, row, v); }); });
    return t;
  }

  /* ------------------------------------------------------------------ Theorem 1: alpha vs width */
  function theorem1(root, D) {
    var st = {d: String(D.dims[D.dims.length - 1]), law: "gaussian", at: D.widths.indexOf(4096), log: false};
    if (st.at < 0) st.at = D.widths.length - 1;
    var controls = el("div", {"class": "nfr-ex-controls"}, root);
    radios(controls, "t1-d", "input dimension", D.dims.map(function (d) {
      return [String(d), d === 2 ? "d = 2 (x at 30\u00b0)" : "d = " + d]; }), st.d, function (v) { st.d = String(v); draw(); });
    radios(controls, "t1-law", "weight law", Object.keys(D.laws).map(function (k) { return [k, D.laws[k]]; }),
           st.law, function (v) { st.law = v; draw(); });
    radios(controls, "t1-scale", "vertical axis", [["alpha", "alignment \u03b1"], ["gap", "1 \u2212 \u03b1 (log scale)"]],
           "alpha", function (v) { st.log = v === "gap"; draw(); });
    var wlab = el("div", {"class": "nfr-ex-controls"}, root);
    slider(wlab, "t1-width", "hidden width N", D.widths.length, st.at, function (i) { st.at = i; draw(); });
    var fig = el("div", {"class": "nfr-ex-figure"}, root);
    var out = el("div", {"class": "nfr-ex-out", "aria-live": "polite"}, root);

    function draw() {
      var S = D.sweeps[st.d][st.law], N = D.widths[st.at];
      var xs = D.widths.map(function (w) { return Math.log2(w); });
      var tr = st.log ? function (v) { return 1 - v; } : function (v) { return v; };
      var series = Object.keys(D.rules).map(function (r) {
        var s = S[r];
        return {key: r, label: D.rules[r], y: s.mean.map(tr), lo: (st.log ? s.hi : s.lo).map(tr), hi: (st.log ? s.lo : s.hi).map(tr)};
      });
      var pred = null;
      if (S.kappa !== null) {
        pred = D.widths.map(function (w) { return 1 / Math.sqrt(1 + S.kappa / w); });
        series.push({key: "pred", label: "GBP predicted: 1/\u221a(1 + \u03ba/N)", y: pred.map(tr), dash: true, colour: "#000", marker: false});
      } else {
        series.push({key: "limit", label: "the law's limit of GBP: " + fmt(S.limit, 3), y: D.widths.map(function () { return tr(S.limit); }),
                     dash: true, colour: "#000", marker: false});
      }
      fig.textContent = "";
      chart(fig, {xs: xs, xlabels: D.widths.map(String), xticks: D.widths.map(function (w, i) { return i; }).filter(function (i) { return i % 2 === 0; }),
                  series: series, at: st.at, logy: st.log, legendBottom: st.log, ylim: st.log ? [-4, 0.3] : [-0.3, 1.02],
                  yticks: st.log ? [-4, -3, -2, -1, 0] : [-0.25, 0, 0.25, 0.5, 0.75, 1],
                  xtitle: "hidden width N (log scale)", ytitle: st.log ? "1 \u2212 \u03b1(R, x)" : "alignment \u03b1(R, x)",
                  aria: "alignment against hidden width, d = " + st.d + ", " + st.law});
      out.textContent = "";
      var rows = Object.keys(D.rules).map(function (r) {
        var s = S[r];
        return [D.rules[r], fmt(s.mean[st.at], 3), fmt(s.lo[st.at], 3) + " to " + fmt(s.hi[st.at], 3)];
      });
      rows.push(pred ? ["GBP, Theorem 1's rate", fmt(pred[st.at], 3), "\u03ba_d = " + S.kappa.toFixed(1)]
                     : ["GBP, the law's limit (no closed-form rate)", fmt(S.limit, 3), "\u2013"]);
      el("p", {"class": "nfr-readout"}, out, "N = " + N + ", d = " + st.d + ", " + D.laws[st.law] + ": mean over " +
         D.n_seeds + " random networks, with the 10% to 90% range.");
      table(out, ["", "\u03b1(R, x)", "10% to 90%"], rows);
    }
    draw();
  }

  /* ------------------------------------------------------------------ cascade substitution */
  function cascade(root, D) {
    var L = D.levels.length - 1;
    var st = {net: "random", img: 0, at: L};
    var controls = el("div", {"class": "nfr-ex-controls"}, root);
    radios(controls, "cas-net", "network (VGG16 layout, CIFAR-10)", [["trained", "trained"], ["random", "random initialisation"]],
           st.net, function (v) { st.net = v; draw(); });
    radios(controls, "cas-img", "image", D.images.map(function (u, i) { return [i, "image " + (i + 1)]; }),
           0, function (v) { st.img = parseInt(v, 10); draw(); });
    var sl = el("div", {"class": "nfr-ex-controls"}, root);
    slider(sl, "cas-level", "cascade level N (top N of " + L + " weight layers use the rule)", D.levels.length, st.at,
           function (i) { st.at = i; draw(); });
    var maps = el("div", {"class": "nfr-ex-maps"}, root);
    var key = el("p", {"class": "nfr-ex-key"}, root);
    key.appendChild(document.createTextNode("Colour scale of the maps, per channel: "));
    el("span", {"class": "nfr-ex-bar"}, key);
    key.appendChild(document.createTextNode(" \u2212max|R| \u2026 0 (grey) \u2026 +max|R|; each map is scaled to its own maximum, " +
                                            "so colours compare shapes, not sizes."));
    var fig = el("div", {"class": "nfr-ex-figure"}, root);
    var out = el("p", {"class": "nfr-readout", "aria-live": "polite"}, root);

    function draw() {
      var E = D.nets[st.net], N = D.levels[st.at];
      maps.textContent = "";
      var f = el("figure", {}, maps);
      el("img", {src: D.images[st.img], alt: "the input image " + (st.img + 1), width: 112, height: 112}, f);
      el("figcaption", {}, f, "input");
      Object.keys(D.rules).forEach(function (r) {
        var g = el("figure", {}, maps);
        el("img", {src: E.maps[r][st.img][st.at], width: 112, height: 112,
                   alt: D.rules[r] + " map at cascade level " + N}, g);
        el("figcaption", {}, g, D.rules[r] + ": \u03b1 = " + fmt(E.alpha[r][st.img][st.at], 3));
      });
      fig.textContent = "";
      chart(fig, {xs: D.levels, xlabels: D.levels.map(String), xticks: D.levels.filter(function (n) { return n % 2 === 0; }),
                  series: Object.keys(D.rules).map(function (r) { return {key: r, label: D.rules[r], y: E.alpha[r][st.img]}; }),
                  at: st.at, logy: false, ylim: [-1, 1], yticks: [-1, -0.5, 0, 0.5, 1],
                  xtitle: "cascade level N (0: the raw gradient)", ytitle: "alignment \u03b1(r\u2080\u1d3a, x)",
                  aria: "alignment against cascade level, " + st.net + " network, image " + (st.img + 1)});
      out.textContent = "Level N = " + N + ": the top " + N + " weight layers use the rule, the " + (L - N) +
        " below them the raw gradient (" + st.net + " network; image " + (st.img + 1) + " is a " + D.classes[D.labels[st.img]] +
        ", the class explained is the network's prediction, " + D.classes[E.target[st.img]] + "). " +
        Object.keys(D.rules).map(function (r) { return D.rules[r] + " \u03b1 = " + fmt(E.alpha[r][st.img][st.at], 3); }).join(", ") + ".";
    }
    draw();
  }

  var RENDER = {theorem1: theorem1, cascade: cascade};

  function start(root) {
    var name = root.getAttribute("data-explorable");
    if (!RENDER[name]) { root.textContent = "unknown explorable " + name; return; }
    function go() { root.textContent = ""; root.classList.add("nfr-ex-ready"); RENDER[name](root, window.NFR_EXPLORABLES[name]); }
    if (window.NFR_EXPLORABLES && window.NFR_EXPLORABLES[name]) return go();
    var s = document.createElement("script");
    s.src = base + name + "-data.js";
    s.onload = go;
    s.onerror = function () { root.textContent = "The explorable's data (" + s.src + ") could not be loaded."; };
    document.head.appendChild(s);
  }

  function init() { Array.prototype.forEach.call(document.querySelectorAll(".nfr-explorable"), start); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
