"""ZIMPOL recipes (:mod:`hcdc.instruments.sphere.zimpol.level1`):

* ``level1-zimpol``: an imaging sequence (OBJECT, OBJECT,FLUX) and its BIAS / DARK / FLAT,LAMP ->
  a Level 1 cube (cameras, frames, y, x) that ``l2-postprocess`` reads (one plane per camera);
* ``zimpol-polarimetry``: a polarimetric sequence (Qplus/Qminus/Uplus/Uminus files) and its
  calibrations -> one Level 2 Stokes product per camera (I, Q, U, Q_phi, U_phi, PI, DoLP, AoLP).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe


class ZimpolLevel1Parameters(RecipeParameters):
    """No parameters: the documented steps of docs/zimpol.md."""


@register_recipe
class ZimpolLevel1(Recipe):
    """ZIMPOL imaging raw files + calibrations -> ``zimpol_level1.fits``
    (:func:`hcdc.instruments.sphere.zimpol.level1.reduce_imaging`)."""

    name = "level1-zimpol"
    version = "0.1"
    product_level = 1
    product_type = "level1-zimpol-cube"
    description = (
        "ZIMPOL imaging raw sequence -> Level 1 cube per camera (bias, dark, flat, de-dither, centre)"
    )
    Parameters = ZimpolLevel1Parameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "raw ZIMPOL imaging files of one sequence and its calibrations"),
    )
    outputs = (
        Port("product", DataKind.LEVEL1, "zimpol_level1.fits (cube, PSF, DEROT, WAVELENGTH, FRAMES)"),
        Port("summary", DataKind.VALUE, "cube shape, filters, frames, field rotation (deg)"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.instruments.sphere.zimpol import level1

        try:
            with context.timer("reduce"):
                path = level1.reduce_imaging(inputs["raw"], context.work_dir / "level1")
        except level1.ZimpolError as exc:
            raise RecipeInputError(str(exc)) from exc
        product = level1.read_level1_zimpol(path)
        summary = {
            "shape": list(product.cube.shape),
            "filters": str(product.header.get("HIERARCH HCDC FILTERS", "")),
            "frames": int(product.cube.shape[1]),
            "field_rotation_deg": float(product.derot.max() - product.derot.min()),
        }
        context.log(f"Level 1 ZIMPOL cube {summary['shape']}")
        return {"product": path, "summary": summary}


class ZimpolPolarimetryParameters(RecipeParameters):
    """Parameters of :func:`hcdc.instruments.sphere.zimpol.level1.reduce_polarimetry`."""

    method: Literal["double_difference", "double_ratio"] = Field(
        "double_difference", description="Stokes Q/U from the HWP cycles"
    )
    ip_correction: bool = Field(True, description="measure and remove the instrumental polarisation")
    ip_annulus_px: tuple[float, float] = Field(
        (3.0, 15.0), description="annulus (inner, outer) where Q/I and U/I are measured, px (7.2 mas)"
    )
    previews: bool = Field(True, description="write PNG previews (Q_phi, U_phi, PI per camera)")
    modulation_efficiency: tuple[float, float] = Field(
        (1.0, 1.0),
        description="modulation/demodulation efficiency (CAM1, CAM2) in (0, 1]: Q and U are divided by it",
    )

    @field_validator("modulation_efficiency")
    @classmethod
    def _efficiency(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 < e <= 1.0 for e in value):
            raise ValueError(f"modulation efficiency must be in (0, 1] for each camera, got {value}")
        return value

    @field_validator("ip_annulus_px")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1]:
            raise ValueError(f"annulus must be 0 <= inner < outer (px), got {value}")
        return value


@register_recipe
class ZimpolPolarimetry(Recipe):
    """ZIMPOL polarimetric raw files + calibrations -> ``zimpol_pol_cam1.fits`` and
    ``zimpol_pol_cam2.fits`` (:func:`hcdc.instruments.sphere.zimpol.level1.reduce_polarimetry`)."""

    name = "zimpol-polarimetry"
    # 0.3: each HWP cycle turned north up counter-clockwise by its DEROT (vlt-sphere/VIP/IRDAP sense,
    # docs/conventions.md); 0.2 (modulation_efficiency) and 0.1 below, hcdc's old clockwise sense
    version = "0.3"
    #: True: cycles derotated in hcdc's old clockwise sense (0.1, 0.2; kept bit for bit)
    legacy_sense = False
    product_level = 2
    product_type = "level2-zimpol-stokes"
    description = (
        "ZIMPOL polarimetric raw sequence -> Stokes I, Q, U, Q_phi, U_phi, PI, DoLP, AoLP per camera"
    )
    Parameters = ZimpolPolarimetryParameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "raw ZIMPOL polarimetric files (HWP cycles) and their calibrations"),
    )
    outputs = (
        Port("product", DataKind.LEVEL2, "folder with zimpol_pol_cam1.fits and zimpol_pol_cam2.fits"),
        Port("summary", DataKind.VALUE, "cycles, instrumental polarisation removed, centring per camera"),
        Port("previews", DataKind.VALUE, "PNG previews {camN_map: path}", optional=True),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.instruments.sphere.zimpol import level1

        assert isinstance(params, ZimpolPolarimetryParameters)
        out = context.work_dir / "level2"
        try:
            with context.timer("reduce"):
                result = level1.reduce_polarimetry(
                    inputs["raw"],
                    out,
                    method=params.method,
                    ip_annulus_px=params.ip_annulus_px if params.ip_correction else None,
                    modulation_efficiency=params.modulation_efficiency,
                    legacy_sense=self.legacy_sense,
                )
        except level1.ZimpolError as exc:
            raise RecipeInputError(str(exc)) from exc
        context.log(f"ZIMPOL Stokes maps from {result.summary['cycles']} HWP cycles")
        outputs: dict[str, Any] = {"product": out, "summary": result.summary}
        if params.previews:
            with context.timer("previews"):
                outputs["previews"] = _stokes_previews(result.paths)
        return outputs


class ZimpolPolarimetryV01Parameters(ZimpolPolarimetryParameters):
    """``zimpol-polarimetry`` 0.1: no modulation-efficiency correction (always 1)."""

    @field_validator("modulation_efficiency")
    @classmethod
    def _none(cls, value: tuple[float, float]) -> tuple[float, float]:
        if tuple(value) != (1.0, 1.0):
            raise ValueError("zimpol-polarimetry 0.1 has no modulation efficiency; use version 0.2")
        return value


@register_recipe
class ZimpolPolarimetryV02(ZimpolPolarimetry):
    """``zimpol-polarimetry`` 0.2 (kept for reproducibility): cycles turned clockwise by DEROT,
    hcdc's old sense (wrong on real data by 2 x DEROT: 3.5 deg in field tracking, POSANG 0)."""

    version = "0.2"
    legacy_sense = True


@register_recipe
class ZimpolPolarimetryV01(ZimpolPolarimetry):
    """``zimpol-polarimetry`` 0.1 (kept for reproducibility): no modulation-efficiency correction,
    hcdc's old clockwise sense."""

    version = "0.1"
    Parameters = ZimpolPolarimetryV01Parameters
    legacy_sense = True


def _stokes_previews(paths: dict[int, Any]) -> dict[str, str]:
    """PNGs of Q_phi and U_phi (one symmetric colour scale: U_phi's residuals show against Q_phi)
    and PI of each camera's product, next to it."""
    import numpy as np
    from astropy.io import fits

    from hcdc.science.postprocessing.previews import plot_image

    previews: dict[str, str] = {}
    for camera, path in paths.items():
        with fits.open(path) as hdul:
            maps = {name: np.asarray(hdul[name].data, dtype=float) for name in ("Q_PHI", "U_PHI", "PI")}
            scale = float(hdul[0].header.get("HIERARCH HCDC PIXSCALE", 7.2))
        finite = np.abs(maps["Q_PHI"][np.isfinite(maps["Q_PHI"])])
        top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        for name, limits in (("Q_PHI", (-top, top)), ("U_PHI", (-top, top)), ("PI", (0.0, top))):
            png = path.with_name(f"{path.stem}_{name.lower()}.png")
            plot_image(
                maps[name],
                png,
                pixel_scale_mas=scale,
                title=f"CAM{camera} {name}",
                unit="ADU/s",
                cmap="RdBu_r" if name != "PI" else "inferno",
                vmin=limits[0],
                vmax=limits[1],
            )
            previews[f"cam{camera}_{name.lower()}"] = str(png)
    return previews
