"""PNG previews of Level 2 products: final image, S/N map, contrast curves.

Drawn with matplotlib's object API on the Agg canvas (no pyplot global state, no display needed),
so previews can be made from worker processes and web requests alike.

Images are shown with ``origin='lower'``, the star at ``(n//2, n//2)``. When the orientation is
known (``sky=True``, ``result.orientation.known``) they are north up / east left with N/E arrows
and, with a plate scale, offsets (ΔRA, ΔDec) in arcsec (ΔRA grows to the left, towards east); when
it is not, they are in the detector frame: no compass, axes Δx, Δy (arcsec or px) growing to the
right and up, and a "detector frame" label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from hcdc.science.geometry import distance_map, frame_center
from hcdc.science.postprocessing.products import ContrastCurves, Detection, PostprocessResult

__all__ = ["display_offset", "plot_contrast_curves", "plot_image", "plot_snr_map", "write_previews"]

_NICE_ARCSEC = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
_NICE_PX = (2, 5, 10, 20, 50, 100, 200, 500)


def _new_figure(size: tuple[float, float] = (6.0, 5.2)) -> Figure:
    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _extent(
    shape: tuple[int, ...], pixel_scale_mas: float | None, sky: bool = True
) -> tuple[list[float], float, str]:
    """imshow extent (star at 0), the size of one pixel in display units, and the axis unit."""
    ny, nx = shape[-2:]
    cy, cx = frame_center(shape)
    if pixel_scale_mas:
        s = pixel_scale_mas / 1000.0
        if not sky:
            return [-(cx + 0.5) * s, (nx - cx - 0.5) * s, -(cy + 0.5) * s, (ny - cy - 0.5) * s], s, "arcsec"
        # Column 0 is drawn on the left; east is left, so ΔRA there is positive (axis decreases rightwards).
        return [(cx + 0.5) * s, -(nx - cx - 0.5) * s, -(cy + 0.5) * s, (ny - cy - 0.5) * s], s, "arcsec"
    return [-cx - 0.5, nx - cx - 0.5, -cy - 0.5, ny - cy - 0.5], 1.0, "px"


def _display_limits(image: np.ndarray, inner_radius_px: float) -> tuple[float, float]:
    """Robust colour limits from the finite pixels outside the central ``inner_radius_px`` (residual star)."""
    values = image[np.isfinite(image) & (distance_map(image.shape) >= inner_radius_px)]
    if values.size == 0:
        values = image[np.isfinite(image)]
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.8])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _nice_length(field_size: float, choices: Sequence[float]) -> float:
    """The largest 'round' length no longer than a quarter of the field."""
    fitting = [c for c in choices if c <= field_size / 4.0]
    return fitting[-1] if fitting else choices[0]


def _draw_compass_and_bar(ax, extent: list[float], unit: str, color: str = "white", sky: bool = True) -> None:
    """North/east arrows (lower right; a "detector frame" label when the orientation is not known)
    and a scale bar (lower left), in axes-fraction positions."""
    base = (0.9, 0.08)  # lower right: the upper corners often hold labels of detections
    length = 0.14
    text = dict(
        color=color, fontsize=11, fontweight="bold", xycoords="axes fraction", ha="center", va="center"
    )
    if sky:
        # Compass: north is +y (up), east is -x (left) on a north-up hcdc final image.
        style = dict(arrowstyle="-|>", color=color, lw=1.6, mutation_scale=12)
        ax.annotate(
            "", xy=(base[0], base[1] + length), xytext=base, xycoords="axes fraction", arrowprops=style
        )
        ax.annotate(
            "", xy=(base[0] - length, base[1]), xytext=base, xycoords="axes fraction", arrowprops=style
        )
        ax.annotate("N", xy=(base[0], base[1] + length + 0.05), **text)
        ax.annotate("E", xy=(base[0] - length - 0.05, base[1]), **text)
    else:
        ax.annotate("detector frame", xy=(0.78, base[1]), **{**text, "fontsize": 9})

    width = abs(extent[1] - extent[0])
    bar = _nice_length(width, _NICE_ARCSEC if unit == "arcsec" else _NICE_PX)
    frac = bar / width
    x0, y0 = 0.06, 0.07
    ax.plot([x0, x0 + frac], [y0, y0], transform=ax.transAxes, color=color, lw=3, solid_capstyle="butt")
    label = f'{bar:g}"' if unit == "arcsec" else f"{bar:g} px"
    ax.text(
        x0 + frac / 2,
        y0 + 0.03,
        label,
        transform=ax.transAxes,
        color=color,
        ha="center",
        va="bottom",
        fontsize=10,
        fontweight="bold",
    )


def display_offset(
    x: float, y: float, shape: tuple[int, ...], pixel_size: float, unit: str, sky: bool = True
) -> tuple[float, float]:
    """Plot coordinates of pixel ``(x, y)``: offsets from the star, (ΔRA, ΔDec) in arcsec (ΔRA positive
    towards east, i.e. towards -x) when ``unit == 'arcsec'`` and ``sky``; (Δx, Δy) in arcsec when
    the orientation is not known, else in pixels."""
    cy, cx = frame_center(shape)
    if unit == "arcsec" and not sky:
        return (x - cx) * pixel_size, (y - cy) * pixel_size
    if unit == "arcsec":
        return -(x - cx) * pixel_size, (y - cy) * pixel_size
    return x - cx, y - cy


def _mark_detections(
    ax,
    detections: Sequence[Detection],
    shape: tuple[int, ...],
    pixel_size: float,
    unit: str,
    radius_px: float,
    color: str = "cyan",
    sky: bool = True,
) -> None:
    for i, det in enumerate(detections, start=1):
        xd, yd = display_offset(det.x, det.y, shape, pixel_size, unit, sky)
        ax.add_patch(Circle((xd, yd), radius_px * pixel_size, fill=False, color=color, lw=1.5))
        ax.text(
            xd,
            yd + 1.6 * radius_px * pixel_size,
            f"{i}: S/N {det.snr:.1f}",
            color=color,
            ha="center",
            va="bottom",
            fontsize=8,
        )


def _axis_labels(ax, unit: str, sky: bool) -> None:
    if unit == "arcsec" and sky:
        ax.set_xlabel("ΔRA [arcsec]")
        ax.set_ylabel("ΔDec [arcsec]")
    else:
        ax.set_xlabel(f"Δx [{unit}]" + ("" if sky else " (detector)"))
        ax.set_ylabel(f"Δy [{unit}]" + ("" if sky else " (detector)"))


def plot_image(
    image: np.ndarray,
    path: str | Path,
    *,
    pixel_scale_mas: float | None = None,
    title: str = "final image",
    unit: str = "",
    fwhm: float | None = None,
    detections: Sequence[Detection] = (),
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    inner_radius: float | None = None,
    sky: bool = True,
) -> Path:
    """PNG of a north-up/east-left ``image`` with N/E arrows, a scale bar and a colour bar.

    Colour limits default to robust percentiles of the pixels beyond ``inner_radius`` px (default
    1 FWHM) from the star.
    """
    image = np.asarray(image, dtype=np.float64)
    extent, pixel_size, axis_unit = _extent(image.shape, pixel_scale_mas, sky)
    lo, hi = _display_limits(
        image, inner_radius_px=inner_radius if inner_radius is not None else (fwhm or 2.0)
    )
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_facecolor("0.25")  # NaN pixels (masked centre, corners) show grey
    shown = ax.imshow(
        image,
        origin="lower",
        extent=extent,
        cmap=cmap,
        interpolation="nearest",
        vmin=lo if vmin is None else vmin,
        vmax=hi if vmax is None else vmax,
    )
    fig.colorbar(shown, ax=ax, label=unit or "cube units")
    if detections:
        _mark_detections(ax, detections, image.shape, pixel_size, axis_unit, radius_px=fwhm or 3.0, sky=sky)
    _draw_compass_and_bar(ax, extent, axis_unit, sky=sky)
    _axis_labels(ax, axis_unit, sky)
    ax.set_title(title)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_snr_map(
    snr_map: np.ndarray,
    path: str | Path,
    *,
    detections: Sequence[Detection] = (),
    threshold: float | None = 5.0,
    fpf: float | None = None,
    pixel_scale_mas: float | None = None,
    fwhm: float | None = None,
    title: str = "S/N map",
    sky: bool = True,
) -> Path:
    """PNG of an S/N map (symmetric colour scale) with detected candidates circled and numbered.

    ``threshold`` (fixed S/N) is marked on the colour bar; ``fpf`` only labels the title.
    """
    snr_map = np.asarray(snr_map, dtype=np.float64)
    finite = snr_map[np.isfinite(snr_map)]
    top = max(float(np.max(np.abs(finite))) if finite.size else 1.0, (threshold or 5.0) * 1.2)
    extent, pixel_size, axis_unit = _extent(snr_map.shape, pixel_scale_mas, sky)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_facecolor("0.25")
    shown = ax.imshow(
        snr_map, origin="lower", extent=extent, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest"
    )
    bar = fig.colorbar(shown, ax=ax, label="S/N")
    if threshold is not None:
        bar.ax.axhline(threshold, color="k", lw=1.5)
    _mark_detections(
        ax, detections, snr_map.shape, pixel_size, axis_unit, radius_px=fwhm or 3.0, color="green", sky=sky
    )
    # The zero level of RdBu is white, so the compass and scale bar are drawn in black here.
    _draw_compass_and_bar(ax, extent, axis_unit, color="black", sky=sky)
    if threshold is not None:
        label = f"{len(detections)} candidate(s) above S/N {threshold:g}"
    elif fpf is not None:
        label = f"{len(detections)} candidate(s) at false-alarm < {fpf:.1e}"
    else:
        label = ""
    ax.set_title(f"{title}\n{label}" if label else title)
    _axis_labels(ax, axis_unit, sky)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_contrast_curves(
    curves: ContrastCurves,
    path: str | Path,
    *,
    pixel_scale_mas: float | None = None,
    wavelengths: Sequence[float] | None = None,
    detections: Sequence[Detection] = (),
    title: str = "contrast curve",
) -> Path:
    """PNG of the N-sigma contrast curves (log scale), separation in arcsec (px on the top axis) when
    the plate scale is known, else in px; detections with a contrast are drawn as stars."""
    fig = _new_figure((6.4, 4.6))
    ax = fig.add_subplot()
    scale = pixel_scale_mas / 1000.0 if pixel_scale_mas else None
    sep = curves.separation_px * scale if scale else curves.separation_px
    n = curves.n_wavelengths
    colours = [colormaps["viridis"](t) for t in np.linspace(0.0, 0.9, n)]
    for k in range(n):
        good = np.isfinite(curves.contrast[k]) & (curves.contrast[k] > 0)
        if wavelengths is not None and len(wavelengths) == n:
            label = f"{wavelengths[k]:.3f} µm"
            if list(wavelengths).count(wavelengths[k]) > 1:  # e.g. IRDIS CI: both fields, one filter
                label += f" (plane {k})"
        else:
            label = None if n == 1 else f"channel {k}"
        ax.plot(sep[good], curves.contrast[k][good], color=colours[k] if n > 1 else "C0", lw=1.6, label=label)
    for det in detections:
        if np.isfinite(det.contrast) and det.contrast > 0:
            x = det.separation_px * scale if scale else det.separation_px
            ax.plot([x], [det.contrast], marker="*", ms=13, color="C3", ls="none")
            ax.annotate(
                f"S/N {det.snr:.1f}",
                (x, det.contrast),
                textcoords="offset points",
                xytext=(6, 4),
                color="C3",
                fontsize=8,
            )
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_xlabel("separation [arcsec]" if scale else "separation [px]")
    ax.set_ylabel(f"{curves.nsigma:g}σ contrast" + (" (Student-corrected)" if curves.student else ""))
    if scale:
        top = ax.secondary_xaxis("top", functions=(lambda a: a / scale, lambda p: p * scale))
        top.set_xlabel("separation [px]")
    if n > 1 or (wavelengths is not None and n == 1):
        ax.legend(fontsize=7, ncol=1 if n <= 8 else 3, loc="upper right")
    ax.set_title(title)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    return path


def write_previews(
    result: PostprocessResult, out_dir: str | Path, stem: str = "postprocess"
) -> dict[str, Path]:
    """Write every preview that ``result`` supports into ``out_dir``; return {kind: path}.

    Kinds: ``image``, ``image_tc`` (throughput corrected), ``snr_map``, ``contrast``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    algo = result.algorithm
    common = dict(pixel_scale_mas=result.pixel_scale_mas, fwhm=result.fwhm, sky=result.orientation.known)
    written = {
        "image": plot_image(
            result.image,
            out_dir / f"{stem}_image.png",
            title=f"{algo}: final image",
            unit=result.image_unit,
            detections=result.detections,
            **common,
        ),
    }
    if result.image_throughput_corrected is not None:
        written["image_tc"] = plot_image(
            result.image_throughput_corrected,
            out_dir / f"{stem}_image_tc.png",
            title=f"{algo}: throughput-corrected image",
            unit=result.image_unit,
            # Close to the star the throughput is small and the corrected noise large: scale on the rest.
            inner_radius=3.0 * (result.fwhm or 2.0),
            **common,
        )
    if result.snr_map is not None:
        written["snr_map"] = plot_snr_map(
            result.snr_map,
            out_dir / f"{stem}_snr.png",
            detections=result.detections,
            threshold=result.detection_threshold,
            fpf=result.detection_fpf,
            title=f"{algo}: S/N map",
            **common,
        )
    if result.contrast is not None:
        written["contrast"] = plot_contrast_curves(
            result.contrast,
            out_dir / f"{stem}_contrast.png",
            pixel_scale_mas=result.pixel_scale_mas,
            wavelengths=None if result.wavelengths is None else list(result.wavelengths),
            detections=result.detections,
            title=f"{algo}: {result.contrast.nsigma:g}σ contrast",
        )
    return written
