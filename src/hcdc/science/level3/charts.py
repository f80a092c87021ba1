"""The astrometry chart of a target: every epoch of every candidate with its errors, one colour per
epoch, and each candidate's stationary-background track over the time span (from its first
epoch's measurement), with the track's predicted position at each later epoch as an open marker of
that epoch's colour. Sky orientation: north up, east left (the RA-offset axis is reversed).

:func:`astrometry_chart_png` draws it with matplotlib; :func:`astrometry_figure` returns the same
as a plotly figure dict for the portal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcdc.science.level3.astrometry import RelativeAstrometry
from hcdc.science.level3.background import HostStar, background_track


@dataclass(frozen=True)
class ChartSeries:
    """What the chart shows for one candidate."""

    name: str
    astrometry: RelativeAstrometry
    track_mjd: np.ndarray  # dense, first to last epoch of the whole chart
    track_ra: np.ndarray
    track_dec: np.ndarray
    predicted_ra: np.ndarray  # track at each of the candidate's epochs
    predicted_dec: np.ndarray
    label: str


def chart_series(
    candidates: Sequence[RelativeAstrometry],
    host: HostStar,
    verdicts: Mapping[str, str] | None = None,
    samples: int = 300,
) -> list[ChartSeries]:
    """The data of the chart (shared by the PNG and the plotly figure)."""
    if not candidates:
        raise ValueError("no candidates to chart")
    stop = max(float(np.max(c.mjd)) for c in candidates)
    series = []
    for cand in candidates:
        cand = cand.sorted()
        first = float(cand.mjd[0])
        dense = np.linspace(first, max(stop, first + 1.0), samples)
        t_ra, t_dec = background_track(host, first, cand.ra[0], cand.dec[0], dense)
        p_ra, p_dec = background_track(host, first, cand.ra[0], cand.dec[0], cand.mjd)
        verdict = (verdicts or {}).get(cand.name)
        label = f"{cand.name} ({verdict})" if verdict else cand.name
        series.append(ChartSeries(cand.name, cand, dense, t_ra, t_dec, p_ra, p_dec, label))
    return series


def _epoch_colours(series: Sequence[ChartSeries]) -> dict[float, str]:
    """One colour per distinct epoch (rounded to the day), in time order along viridis."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    epochs = sorted({round(float(t), 0) for s in series for t in s.astrometry.mjd})
    cmap = colormaps["viridis"]
    span = max(len(epochs) - 1, 1)
    return {t: to_hex(cmap(0.9 * i / span)) for i, t in enumerate(epochs)}


def _iso(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd").to_value("iso", subfmt="date")


def astrometry_chart_png(
    candidates: Sequence[RelativeAstrometry],
    host: HostStar,
    path: str | Path,
    *,
    verdicts: Mapping[str, str] | None = None,
    title: str = "",
) -> Path:
    """Draw the astrometry chart to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = chart_series(candidates, host, verdicts)
    colours = _epoch_colours(series)
    fig, ax = plt.subplots(figsize=(7.0, 6.4), dpi=110)
    for s in series:
        a = s.astrometry
        ax.plot(s.track_ra, s.track_dec, color="0.45", lw=1.0, ls="--", zorder=1)
        ax.annotate(s.label, (a.ra[0], a.dec[0]), xytext=(6, 6), textcoords="offset points", fontsize=8)
        for i, t in enumerate(a.mjd):
            colour = colours[round(float(t), 0)]
            ax.errorbar(
                a.ra[i],
                a.dec[i],
                xerr=a.ra_err[i],
                yerr=a.dec_err[i],
                fmt="o",
                ms=5,
                color=colour,
                mec="black",
                mew=0.4,
                elinewidth=1.0,
                zorder=3,
            )
            if i > 0:
                ax.plot(
                    s.predicted_ra[i],
                    s.predicted_dec[i],
                    marker="o",
                    ms=7,
                    mfc="none",
                    mec=colour,
                    mew=1.5,
                    zorder=2,
                )
    for t, colour in colours.items():  # legend: one entry per epoch
        ax.plot([], [], "o", color=colour, label=_iso(t))
    ax.plot([], [], ls="--", color="0.45", label="stationary background track")
    ax.plot([], [], "o", mfc="none", mec="0.3", label="background prediction")
    ax.set_xlabel("RA offset [mas] (east left)")
    ax.set_ylabel("Dec offset [mas]")
    ax.invert_xaxis()
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(colours) > 8 else 1)
    ax.set_title(title or (host.name or "astrometry"))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def astrometry_figure(
    candidates: Sequence[RelativeAstrometry],
    host: HostStar,
    *,
    verdicts: Mapping[str, str] | None = None,
    title: str = "",
) -> dict[str, Any]:
    """The astrometry chart as a plotly figure dict (``data`` traces and ``layout``), JSON-ready."""
    series = chart_series(candidates, host, verdicts)
    colours = _epoch_colours(series)
    traces: list[dict[str, Any]] = []
    for s in series:
        a = s.astrometry
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{s.name}: background track",
                "x": s.track_ra.tolist(),
                "y": s.track_dec.tolist(),
                "line": {"color": "#737373", "dash": "dash", "width": 1},
                "hoverinfo": "skip",
                "legendgroup": s.name,
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{s.name}: background prediction",
                "x": s.predicted_ra[1:].tolist(),
                "y": s.predicted_dec[1:].tolist(),
                "marker": {
                    "symbol": "circle-open",
                    "size": 11,
                    "line": {"width": 2},
                    "color": [colours[round(float(t), 0)] for t in a.mjd[1:]],
                },
                "text": [_iso(t) for t in a.mjd[1:]],
                "legendgroup": s.name,
                "hovertemplate": "predicted if background %{text}<br>%{x:.1f}, %{y:.1f} mas<extra></extra>",
            }
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": s.label,
                "x": a.ra.tolist(),
                "y": a.dec.tolist(),
                "error_x": {"type": "data", "array": a.ra_err.tolist(), "visible": True},
                "error_y": {"type": "data", "array": a.dec_err.tolist(), "visible": True},
                "marker": {
                    "size": 9,
                    "color": [colours[round(float(t), 0)] for t in a.mjd],
                    "line": {"color": "black", "width": 0.5},
                },
                "text": [_iso(t) for t in a.mjd],
                "legendgroup": s.name,
                "hovertemplate": "%{text}<br>RA %{x:.1f} mas, Dec %{y:.1f} mas<extra>" + s.name + "</extra>",
            }
        )
    layout = {
        "title": {"text": title or (host.name or "astrometry")},
        "xaxis": {"title": {"text": "RA offset [mas] (east left)"}, "autorange": "reversed"},
        "yaxis": {"title": {"text": "Dec offset [mas]"}, "scaleanchor": "x", "scaleratio": 1},
        "legend": {"orientation": "h"},
    }
    return {"data": traces, "layout": layout}
