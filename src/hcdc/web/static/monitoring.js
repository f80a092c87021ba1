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

document.addEventListener("DOMContentLoaded", drawNight);
