"""Absolute magnitudes and colour-magnitude diagrams (CMDs).

``M = m + 5 log10(parallax / mas) - 10``; its error adds the apparent magnitude's error and the
parallax term ``(5 / ln 10) sigma_plx / plx`` in quadrature. A colour (m1 - m2) does not depend
on the parallax: its error is that of the two apparent magnitudes only.

Diagrams (:data:`DIAGRAMS`): ``H2-H3`` (M_H2 vs H2-H3), ``K1-K2`` (M_K1 vs K1-K2) with the
SPHERE/IRDIS dual-band filters, and ``J-H``, ``J-K``, ``H-K`` (M_J, M_J, M_H) in broad bands.
Field dwarfs of the UltracoolSheet have broad-band photometry only, so the IRDIS diagrams show
them not at all (no synthetic photometry is made up); young companions appear where species has
the filters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_PLX_TERM = 5.0 / math.log(10.0)


def absolute_magnitude(
    mag: float, mag_err: float, parallax_mas: float, parallax_err_mas: float = 0.0
) -> tuple[float, float]:
    """(M, sigma_M) from an apparent magnitude and a parallax [mas] with errors."""
    if not parallax_mas > 0:
        raise ValueError(f"parallax must be positive (got {parallax_mas} mas)")
    absolute = mag + 5.0 * math.log10(parallax_mas) - 10.0
    return absolute, math.hypot(mag_err, _PLX_TERM * parallax_err_mas / parallax_mas)


@dataclass(frozen=True)
class AbsolutePhotometry:
    """One object's absolute magnitudes: ``bands`` maps a band label to (M, sigma of the
    apparent magnitude); ``parallax_term`` is the magnitude error the parallax adds to every M."""

    name: str
    bands: dict[str, tuple[float, float]]
    parallax_mas: float
    parallax_term: float
    kind: str = "detection"  # "detection", "young companion", "field dwarf", ...
    spectral_type: str = ""

    def absolute(self, band: str) -> tuple[float, float]:
        """(M, sigma_M) in ``band`` (KeyError when not measured)."""
        mag, err = self.bands[band]
        return mag, math.hypot(err, self.parallax_term)

    def colour(self, blue: str, red: str) -> tuple[float, float]:
        """(blue - red, sigma): independent of the parallax."""
        (m1, e1), (m2, e2) = self.bands[blue], self.bands[red]
        return m1 - m2, math.hypot(e1, e2)


def absolute_photometry(
    name: str,
    apparent: dict[str, tuple[float, float]],
    parallax_mas: float,
    parallax_err_mas: float = 0.0,
    *,
    kind: str = "detection",
    spectral_type: str = "",
) -> AbsolutePhotometry:
    """Absolute magnitudes of every band of ``apparent`` (band -> (m, sigma_m))."""
    bands = {b: (absolute_magnitude(m, e, parallax_mas)[0], e) for b, (m, e) in apparent.items()}
    term = _PLX_TERM * parallax_err_mas / parallax_mas
    return AbsolutePhotometry(name, bands, parallax_mas, term, kind, spectral_type)


@dataclass(frozen=True)
class Diagram:
    """A CMD: absolute magnitude in ``mag_band`` against the colour ``blue - red``."""

    name: str
    mag_band: str
    blue: str
    red: str

    @property
    def x_label(self) -> str:
        return f"{self.blue} - {self.red} [mag]"

    @property
    def y_label(self) -> str:
        return f"M_{self.mag_band} [mag]"


DIAGRAMS: dict[str, Diagram] = {
    d.name: d
    for d in (
        Diagram("H2-H3", "H2", "H2", "H3"),
        Diagram("K1-K2", "K1", "K1", "K2"),
        Diagram("J-H", "J", "J", "H"),
        Diagram("J-K", "J", "J", "K"),
        Diagram("H-K", "H", "H", "K"),
    )
}


def get_diagram(name: str) -> Diagram:
    """A diagram of :data:`DIAGRAMS` by name (``H2-H3``; ``H2 - H3`` and ``h2-h3`` too)."""
    key = name.replace(" ", "").replace("\u2212", "-").upper()
    for diagram in DIAGRAMS.values():
        if diagram.name.upper() == key:
            return diagram
    raise ValueError(f"unknown diagram {name!r}: choose one of {', '.join(DIAGRAMS)}")


@dataclass(frozen=True)
class CMDPoint:
    """One object in one diagram."""

    name: str
    kind: str
    colour: float
    colour_err: float
    absmag: float
    absmag_err: float
    spectral_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in self.__dict__.items()
        }


def cmd_points(objects: Iterable[AbsolutePhotometry], diagram: Diagram) -> list[CMDPoint]:
    """The objects that have the diagram's bands, as points."""
    points = []
    for obj in objects:
        if not {diagram.mag_band, diagram.blue, diagram.red} <= set(obj.bands):
            continue
        colour, c_err = obj.colour(diagram.blue, diagram.red)
        mag, m_err = obj.absolute(diagram.mag_band)
        points.append(CMDPoint(obj.name, obj.kind, colour, c_err, mag, m_err, obj.spectral_type))
    return points


def nearest_references(
    point: CMDPoint, references: Sequence[CMDPoint], count: int = 3
) -> list[tuple[CMDPoint, float]]:
    """The ``count`` reference points closest to ``point`` in units of their combined errors
    (a floor of 0.05 mag on each axis for the intrinsic scatter), with those distances."""
    out = []
    for ref in references:
        sx = math.hypot(point.colour_err, ref.colour_err, 0.05)
        sy = math.hypot(point.absmag_err, ref.absmag_err, 0.05)
        out.append((ref, math.hypot((point.colour - ref.colour) / sx, (point.absmag - ref.absmag) / sy)))
    out.sort(key=lambda item: item[1])
    return out[:count]


# -- charts -------------------------------------------------------------------------------------

_STYLE = {  # kind -> (matplotlib marker, colour, size, plotly symbol)
    "field dwarf": ("o", "#9a9a9a", 8, "circle"),
    "young/other dwarf": ("o", "#7fa7d6", 8, "circle"),
    "young companion": ("D", "#e08a1e", 30, "diamond"),
    "detection": ("*", "#c8102e", 160, "star"),
}


@dataclass
class _Layers:
    by_kind: dict[str, list[CMDPoint]] = field(default_factory=dict)

    @classmethod
    def of(cls, points: Iterable[CMDPoint]) -> _Layers:
        layers = cls()
        for p in points:
            layers.by_kind.setdefault(p.kind, []).append(p)
        order = list(_STYLE)
        layers.by_kind = dict(
            sorted(layers.by_kind.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
        )
        return layers


def plot_cmd_png(points: Sequence[CMDPoint], diagram: Diagram, path: str | Path, title: str = "") -> Path:
    """Draw the CMD (references below, detections on top, labelled; brighter up) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=110)
    for kind, pts in _Layers.of(points).by_kind.items():
        marker, colour, size, _ = _STYLE.get(kind, ("s", "#333333", 20, "square"))
        x = [p.colour for p in pts]
        y = [p.absmag for p in pts]
        if kind in {"detection", "young companion"}:
            ax.errorbar(
                x,
                y,
                xerr=[p.colour_err for p in pts],
                yerr=[p.absmag_err for p in pts],
                fmt="none",
                ecolor=colour,
                elinewidth=0.8,
                alpha=0.8,
                zorder=2,
            )
        ax.scatter(
            x,
            y,
            marker=marker,
            s=size,
            c=colour,
            label=f"{kind} ({len(pts)})",
            zorder=3,
            edgecolors="black" if kind == "detection" else "none",
            linewidths=0.5,
        )
        if kind in {"detection", "young companion"}:
            for p in pts:
                ax.annotate(
                    p.name,
                    (p.colour, p.absmag),
                    fontsize=6 if kind != "detection" else 8,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    ax.invert_yaxis()
    ax.set_xlabel(diagram.x_label)
    ax.set_ylabel(diagram.y_label)
    ax.set_title(title or f"M_{diagram.mag_band} vs {diagram.blue}-{diagram.red}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def cmd_figure(points: Sequence[CMDPoint], diagram: Diagram, title: str = "") -> dict[str, Any]:
    """The CMD as a plotly figure (a JSON-ready dict: ``data`` traces and ``layout``)."""
    traces = []
    for kind, pts in _Layers.of(points).by_kind.items():
        _, colour, size, symbol = _STYLE.get(kind, ("s", "#333333", 20, "square"))
        trace: dict[str, Any] = {
            "type": "scatter",
            "mode": "markers",
            "name": kind,
            "x": [p.colour for p in pts],
            "y": [p.absmag for p in pts],
            "text": [f"{p.name} {p.spectral_type}".strip() for p in pts],
            "hovertemplate": "%{text}<br>colour %{x:.2f}<br>M %{y:.2f}<extra></extra>",
            "marker": {"color": colour, "symbol": symbol, "size": max(5, int(math.sqrt(size) * 1.5))},
        }
        if kind in {"detection", "young companion"}:
            trace["error_x"] = {"type": "data", "array": [p.colour_err for p in pts], "visible": True}
            trace["error_y"] = {"type": "data", "array": [p.absmag_err for p in pts], "visible": True}
        traces.append(trace)
    layout = {
        "title": {"text": title or f"M_{diagram.mag_band} vs {diagram.blue}-{diagram.red}"},
        "xaxis": {"title": {"text": diagram.x_label}},
        "yaxis": {"title": {"text": diagram.y_label}, "autorange": "reversed"},
        "legend": {"orientation": "h"},
    }
    return {"data": traces, "layout": layout}


def finite(values: Iterable[float]) -> np.ndarray:
    """The finite values (NaN-free arrays for axis limits)."""
    arr = np.asarray(list(values), dtype=float)
    return arr[np.isfinite(arr)]
