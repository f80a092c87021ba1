// hcdc portal: draws a product's charts with plotly (served by the portal) and follows a job.
// No inline scripts (Content-Security-Policy 'self'): data come from a JSON <script> element.
"use strict";

function drawCharts() {
  const holder = document.getElementById("chart-data");
  if (!holder || typeof Plotly === "undefined") return;
  const data = JSON.parse(holder.textContent);
  const unit = data.separation_unit;
  const curves = data.curves.map((c) => ({
    x: c.separation, y: c.contrast, name: c.label, type: "scatter", mode: "lines",
  }));
  const detections = data.detections.filter((d) => d.contrast > 0);
  if (detections.length) {
    curves.push({
      x: detections.map((d) => (unit === "mas" ? d.separation_mas : d.separation_px)),
      y: detections.map((d) => d.contrast), name: "detections", type: "scatter", mode: "markers",
      marker: { size: 10, symbol: "star" },
    });
  }
  const sigma = data.nsigma || 5;
  Plotly.newPlot("contrast-chart", curves, {
    title: { text: sigma + "σ contrast" }, xaxis: { title: { text: "separation (" + unit + ")" } },
    yaxis: { title: { text: "contrast" }, type: "log", exponentformat: "e" }, margin: { t: 40 },
  }, { responsive: true, displaylogo: false }).then(() => document.getElementById("contrast-chart").dataset.drawn = "1");
  if (data.snr_map) {
    Plotly.newPlot("snr-chart", [{ z: data.snr_map.z, type: "heatmap", colorscale: "RdBu", reversescale: false,
      zmid: 0, colorbar: { title: { text: "S/N" } } }], {
      title: { text: "S/N map" + (data.snr_map.binning > 1 ? " (binned " + data.snr_map.binning + "×)" : "") },
      yaxis: { scaleanchor: "x" }, margin: { t: 40 },
    }, { responsive: true, displaylogo: false }).then(() => document.getElementById("snr-chart").dataset.drawn = "1");
  }
}

function followJob() {
  // polls the job's JSON (1 s at first, slowing to 5 s) and redraws state, progress and stage;
  // reloads once the job has ended, to show its products, log and error as the server renders them
  const box = document.getElementById("job");
  if (!box) return;
  const id = box.dataset.job;
  let delay = 1000;
  const tick = async () => {
    let job = null;
    try {
      const response = await fetch("/api/v1/jobs/" + id, { credentials: "same-origin" });
      if (response.status >= 400 && response.status < 500) return;  // signed out, or no such job
      if (response.ok) job = await response.json();
    } catch (e) { /* the server restarts: try again later */ }
    if (job !== null) {
      box.dataset.state = job.state;
      document.getElementById("job-state").textContent = job.state;
      document.getElementById("job-progress").value = job.progress;
      document.getElementById("job-percent").textContent = Math.round(100 * (job.progress || 0)) + " %";
      document.getElementById("job-stage").textContent = job.stage || "";
      if (job.state !== "queued" && job.state !== "running") {
        window.location.reload();
        return;
      }
    }
    delay = Math.min(5000, delay * 1.2);
    setTimeout(tick, delay);
  };
  setTimeout(tick, delay);
}

document.addEventListener("DOMContentLoaded", () => { drawCharts(); followJob(); });

function followBatch() {
  // polls the batch's JSON (1 s at first, slowing to 5 s) and redraws its state, counts, progress
  // and each job's state, progress and stage, until no job of the batch is queued or running
  const box = document.getElementById("batch");
  if (!box) return;
  const id = box.dataset.batch;
  let delay = 1000;
  const active = (state) => state === "queued" || state === "running";
  const tick = async () => {
    let batch = null;
    try {
      const response = await fetch("/api/v1/batches/" + id, { credentials: "same-origin" });
      if (response.status >= 400 && response.status < 500) return;  // signed out, or no such batch
      if (response.ok) batch = await response.json();
    } catch (e) { /* the server restarts: try again later */ }
    if (batch !== null) {
      box.dataset.state = batch.state;
      document.getElementById("batch-state").textContent = batch.state;
      document.getElementById("batch-progress").value = batch.progress;
      document.getElementById("batch-percent").textContent = Math.round(100 * batch.progress) + " %";
      for (const [state, n] of Object.entries(batch.counts)) {
        const cell = box.querySelector('[data-count="' + state + '"]');
        if (cell) cell.textContent = n;
      }
      for (const job of batch.jobs) {
        const row = box.querySelector('tr[data-job="' + job.id + '"]');
        if (!row) continue;
        row.querySelector(".job-state").textContent = job.state;
        row.querySelector(".job-percent").textContent = Math.round(100 * (job.progress || 0)) + " %";
        row.querySelector(".job-stage").textContent = job.stage || "";
        row.querySelector(".job-error").textContent = job.error || "";
      }
      if (!active(batch.state)) return;
    }
    delay = Math.min(5000, delay * 1.2);
    setTimeout(tick, delay);
  };
  if (active(box.dataset.state)) setTimeout(tick, delay);
}

document.addEventListener("DOMContentLoaded", followBatch);
