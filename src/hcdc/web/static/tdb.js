// hcdc portal, Target Data Base: draws a candidate's astrometry chart and colour-magnitude
// diagrams with the portal's plotly. No inline script (CSP 'self'): figures come from a JSON
// <script> element written by the server (hcdc.archive.tdb_views).
"use strict";

function drawTdbFigures() {
  const holder = document.getElementById("tdb-figures");
  if (!holder || typeof Plotly === "undefined") return;
  const figures = JSON.parse(holder.textContent);
  const config = { responsive: true, displaylogo: false };
  const mark = (id) => () => { document.getElementById(id).dataset.drawn = "1"; };
  if (figures.astrometry && document.getElementById("astrometry-chart")) {
    const f = figures.astrometry;
    Plotly.newPlot("astrometry-chart", f.data, f.layout, config).then(mark("astrometry-chart"));
  }
  (figures.cmd || []).forEach((f, i) => {
    const id = "cmd-chart-" + i;
    if (document.getElementById(id)) Plotly.newPlot(id, f.data, f.layout, config).then(mark(id));
  });
}

document.addEventListener("DOMContentLoaded", drawTdbFigures);
