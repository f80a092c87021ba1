// hcdc monitoring: draws a night's AO conditions (SPARTA seeing, tau0, Strehl against UTC time)
// with plotly (served by the portal), the science sequences as shaded spans. No inline script
// (Content-Security-Policy 'self'): the data come from the JSON <script id="night-data">.
"use strict";

function drawNight() {
  const holder = document.getElementById("night-data");
  if (!holder || typeof Plotly === "undefined") return;
  const d = JSON.parse(holder.textContent);
  const line = (y, name, axis) => ({ x: d.time, y: y, name: name, yaxis: axis, type: "scatter", mode: "lines" });
  const traces = [
    line(d.seeing, "seeing (″)", "y"),
    line(d.seeing_zenith, "zenith seeing (″)", "y"),
    line(d.tau0_ms, "τ0 (ms)", "y2"),
    line(d.strehl, "Strehl", "y3"),
  ];
  if (d.ambient.time.length) {
    traces.push({ x: d.ambient.time, y: d.ambient.seeing, name: "DIMM seeing (″)", yaxis: "y",
      type: "scatter", mode: "markers", marker: { size: 5 } });
  }
  const shapes = d.sequences.map((s) => ({ type: "rect", xref: "x", yref: "paper", x0: s.start, x1: s.end,
    y0: 0, y1: 1, fillcolor: "rgba(120, 120, 200, 0.15)", line: { width: 0 }, layer: "below" }));
  const annotations = d.sequences.map((s) => ({ x: s.start, xref: "x", y: 1, yref: "paper", text: s.label,
    showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 10 } }));
  Plotly.newPlot("night-chart", traces, {
    title: { text: "AO conditions, night " + d.night },
    xaxis: { title: { text: "UTC" }, type: "date", anchor: "y3" },
    yaxis: { title: { text: "seeing (″)" }, domain: [0.68, 1] },
    yaxis2: { title: { text: "τ0 (ms)" }, domain: [0.35, 0.63] },
    yaxis3: { title: { text: "Strehl" }, domain: [0, 0.3] },
    shapes: shapes, annotations: annotations, margin: { t: 60 }, height: 620,
  }, { responsive: true, displaylogo: false }).then(() => { document.getElementById("night-chart").dataset.drawn = "1"; });
}

// Contrast versus conditions: measured against expected contrast (log-log, one colour per
// separation, flagged products as crosses) and measured contrast against seeing and tau0.
function drawContrast() {
  const holder = document.getElementById("contrast-data");
  if (!holder || typeof Plotly === "undefined") return;
  const d = JSON.parse(holder.textContent);
  const traces = [];
  d.separations.forEach((sep, i) => {
    const rows = d.products.filter((p) => p.measured[i] !== null);
    if (!rows.length) return;
    const name = sep + "″";
    const marker = (p) => (p.flagged[i] ? "x" : "circle");
    const withModel = rows.filter((p) => p.expected[i] !== null);
    traces.push({ x: withModel.map((p) => p.expected[i]), y: withModel.map((p) => p.measured[i]),
      text: withModel.map((p) => p.label), name: name + " measured vs expected", legendgroup: name,
      type: "scatter", mode: "markers", marker: { symbol: withModel.map(marker), size: 9 }, xaxis: "x", yaxis: "y" });
    traces.push({ x: rows.map((p) => p.seeing), y: rows.map((p) => p.measured[i]), text: rows.map((p) => p.label),
      name: name + " vs seeing", legendgroup: name, showlegend: false, type: "scatter", mode: "markers",
      marker: { symbol: rows.map(marker), size: 7 }, xaxis: "x2", yaxis: "y2" });
    traces.push({ x: rows.map((p) => p.tau0_ms), y: rows.map((p) => p.measured[i]), text: rows.map((p) => p.label),
      name: name + " vs τ0", legendgroup: name, showlegend: false, type: "scatter", mode: "markers",
      marker: { symbol: rows.map(marker), size: 7 }, xaxis: "x3", yaxis: "y3" });
  });
  const all = d.products.flatMap((p) => p.expected.concat(p.measured)).filter((v) => v !== null && v > 0);
  if (all.length) {
    const lo = Math.min(...all) / 2, hi = Math.max(...all) * 2;
    traces.push({ x: [lo, hi], y: [lo, hi], name: "measured = expected", type: "scatter", mode: "lines",
      line: { dash: "dot", color: "grey" }, xaxis: "x", yaxis: "y" });
  }
  Plotly.newPlot("contrast-chart", traces, {
    title: { text: "5σ contrast versus conditions (× = flagged)" },
    grid: { rows: 1, columns: 3, pattern: "independent" },
    xaxis: { title: { text: "expected contrast" }, type: "log" },
    yaxis: { title: { text: "measured contrast" }, type: "log" },
    xaxis2: { title: { text: "seeing (″, line of sight)" } }, yaxis2: { type: "log" },
    xaxis3: { title: { text: "τ0 (ms, line of sight)" } }, yaxis3: { type: "log" },
    height: 480, margin: { t: 60 },
  }, { responsive: true, displaylogo: false }).then(() => { document.getElementById("contrast-chart").dataset.drawn = "1"; });
}

// True North and plate scale against time: one trace per instrument arm (and filter), error
// bars, and the constant the pipeline assumes as a dotted line.
function drawAstrometry() {
  const holder = document.getElementById("astrometry-data");
  if (!holder || typeof Plotly === "undefined") return;
  const d = JSON.parse(holder.textContent);
  const groups = {};
  d.measurements.forEach((m) => {
    const key = m.instrument + "/" + (m.arm || "") + (m.filter ? " " + m.filter : "");
    (groups[key] = groups[key] || []).push(m);
  });
  const traces = [];
  const epochs = d.measurements.map((m) => m.epoch);
  const span = [epochs[0], epochs[epochs.length - 1]];
  Object.entries(groups).forEach(([key, rows]) => {
    [["true_north_deg", "true_north_err_deg", "y"], ["plate_scale_mas", "plate_scale_err_mas", "y2"]].forEach(([v, e, axis]) => {
      const use = rows.filter((m) => m[v] !== null);
      if (!use.length) return;
      traces.push({ x: use.map((m) => m.epoch), y: use.map((m) => m[v]), text: use.map((m) => m.source),
        error_y: { type: "data", array: use.map((m) => m[e] || 0), visible: true },
        name: key + (axis === "y" ? " True North" : " plate scale"), yaxis: axis, type: "scatter", mode: "markers" });
    });
  });
  Object.entries(d.assumed).forEach(([key, a]) => {
    if (!d.measurements.some((m) => m.instrument + "/" + (m.arm || "") === key)) return;
    traces.push({ x: span, y: [a.true_north_deg, a.true_north_deg], name: key + " assumed True North", yaxis: "y",
      type: "scatter", mode: "lines", line: { dash: "dot" } });
    traces.push({ x: span, y: [a.plate_scale_mas, a.plate_scale_mas], name: key + " assumed plate scale", yaxis: "y2",
      type: "scatter", mode: "lines", line: { dash: "dot" } });
  });
  (d.trend || []).forEach((s) => {
    // each series' fitted straight line (drift per year), dashed
    const key = s.instrument + "/" + (s.arm || "") + (s.filter ? " " + s.filter : "");
    [["true_north", "y", " True North drift"], ["plate_scale", "y2", " plate scale drift"]].forEach(([q, axis, label]) => {
      const f = s[q];
      if (!f || f.slope_per_year === null) return;
      traces.push({ x: f.line.map((p) => p.epoch), y: f.line.map((p) => p.value), name: key + label, yaxis: axis,
        type: "scatter", mode: "lines", line: { dash: "dash" } });
    });
  });
  Plotly.newPlot("astrometry-chart", traces, {
    title: { text: "True North and plate scale" },
    xaxis: { title: { text: "epoch" }, type: "date", anchor: "y2" },
    yaxis: { title: { text: "True North (deg)" }, domain: [0.55, 1] },
    yaxis2: { title: { text: "plate scale (mas/px)" }, domain: [0, 0.45] },
    height: 560, margin: { t: 60 },
  }, { responsive: true, displaylogo: false }).then(() => { document.getElementById("astrometry-chart").dataset.drawn = "1"; });
}

document.addEventListener("DOMContentLoaded", drawNight);
document.addEventListener("DOMContentLoaded", drawAstrometry);
document.addEventListener("DOMContentLoaded", drawContrast);
