"""The night overview figure (as the SPHERE Data Center's): seeing, tau0 and Strehl versus time.

Three panels sharing a UTC time axis: seeing (line of sight and zenith, arcsec, with the ESO
ambient DIMM seeing of the science headers when present), tau0 (ms, line of sight and zenith)
and the SPARTA Strehl ratio; every science sequence is a shaded span labelled with its target
and setup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

__all__ = ["night_overview_png"]


def _datetimes(mjd: np.ndarray) -> np.ndarray:
    return Time(np.asarray(mjd, dtype=float), format="mjd", scale="utc").to_datetime()


def _with_gaps(mjd: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert a NaN where consecutive samples are more than three median intervals apart, so
    that lines are not drawn across telemetry gaps (between OBs)."""
    mjd, values = np.asarray(mjd, dtype=float), np.asarray(values, dtype=float)
    if mjd.size < 3:
        return mjd, values
    step = np.diff(mjd)
    gaps = np.flatnonzero(step > 3.0 * np.median(step)) + 1
    return np.insert(mjd, gaps, mjd[gaps - 1] + step[gaps - 1] / 2), np.insert(values, gaps, np.nan)


def night_overview_png(
    path: str | Path,
    series: Mapping[str, np.ndarray],
    sequences: Sequence[Mapping[str, Any]] = (),
    ambient: Sequence[tuple[float, float]] = (),
    title: str = "",
) -> Path:
    """Draw the overview into the PNG file ``path`` and return it.

    ``series``: arrays ``mjd``, ``seeing``, ``seeing_zenith`` (arcsec), ``tau0_s``,
    ``tau0_zenith_s`` (s), ``strehl`` (as from
    :func:`hcdc.instruments.sphere.sparta.conditions_series`); ``sequences``: mappings with
    ``mjd_start``, ``mjd_end`` and optional ``target``, ``filter``; ``ambient``: (MJD, DIMM
    seeing in arcsec) pairs.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    t = _datetimes(series["mjd"]) if len(series["mjd"]) else np.array([])
    ax_seeing, ax_tau0, ax_strehl = axes
    if len(t):
        ax_seeing.plot(
            t, series["seeing"], ".", ms=3, color="tab:blue", label="SPARTA seeing (line of sight)"
        )
        tz, seeing_zenith = _with_gaps(series["mjd"], series["seeing_zenith"])
        _, tau0_zenith = _with_gaps(series["mjd"], series["tau0_zenith_s"])
        tz = _datetimes(tz)
        ax_seeing.plot(tz, seeing_zenith, "-", lw=0.8, color="tab:cyan", label="SPARTA seeing (zenith)")
        ax_tau0.plot(
            t, np.asarray(series["tau0_s"]) * 1e3, ".", ms=3, color="tab:green", label="tau0 (line of sight)"
        )
        ax_tau0.plot(tz, tau0_zenith * 1e3, "-", lw=0.8, color="tab:olive", label="tau0 (zenith)")
        ax_strehl.plot(t, series["strehl"], ".", ms=3, color="tab:red", label="SPARTA Strehl")
    else:
        ax_seeing.text(0.5, 0.5, "no valid AO telemetry", transform=ax_seeing.transAxes, ha="center")
    if ambient:
        mjd, seeing = np.array(ambient, dtype=float).T
        ax_seeing.plot(_datetimes(mjd), seeing, "x", ms=4, color="k", label="ESO DIMM seeing (headers)")
    for k, seq in enumerate(sequences):
        start, end = _datetimes(np.array([seq["mjd_start"], seq["mjd_end"]]))
        for ax in axes:
            ax.axvspan(start, end, color=f"C{k % 10}", alpha=0.12, lw=0)
        label = " ".join(str(seq[key]) for key in ("target", "filter") if seq.get(key))
        ax_seeing.annotate(
            label or f"sequence {k + 1}",
            xy=(start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=7,
        )
    ax_seeing.set_ylabel("seeing (arcsec)")
    ax_tau0.set_ylabel("tau0 (ms)")
    ax_strehl.set_ylabel("Strehl")
    ax_strehl.set_ylim(0, 1)
    ax_strehl.set_xlabel("UTC")
    ax_strehl.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
