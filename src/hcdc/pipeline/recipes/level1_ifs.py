"""``level1-ifs``: IFS raw files of one sequence and its calibrations -> the Level 1 product
(:mod:`hcdc.instruments.sphere.ifs.level1`).

0.3 corrects the spectral cross-talk (Mesa et al. 2015) of every frame that went through the
lenslets before extraction (:data:`hcdc.instruments.sphere.ifs.geometry.CROSSTALK`); 0.2 added
the PSF cube of the OBJECT,FLUX files, the anamorphism correction and the angle
convention / pointing keywords that Level 2 reads (``hcdc reduce`` runs it: ``ifs-l1-l2``);
0.1 (spectral cube, angles, wavelengths, waffle centres only) and 0.2 stay registered so that
their products rerun from their provenance. 0.4 adds to 0.3 the per-frame AO conditions (``CONDITIONS`` and
``AO_FILES`` tables, from the SPARTA files among the raw inputs, as ``level1-irdis`` 1.1 does:
:mod:`hcdc.instruments.sphere.frame_conditions`) and their medians to the summary
(``ao_conditions``). 0.5 adds to 0.4 the band-edge spectral response: every extracted spectrum is
divided by the IFU flat's median spectrum relative to its smooth continuum, which restores the
light that the order-sorting filter edges take from the first and last channels (~16 %)
(docs/ifs.md, section 3.2). 0.6 adds to 0.5 a bound on the star centre per channel: a channel
keeps its own waffle-spot centre only where the spot fit's error is at most
``MAX_CENTER_ERR_PX``; the others take the median centre of those that do (0.5: every channel whose
spots were found, however uncertain; on the 'small' field the spots leave the cube towards the
red and the centres of channels 12-22 drifted by up to 0.6 px, docs/ifs.md §3.3). The newest
version, so ``hcdc reduce`` runs it.
"""

from __future__ import annotations

from typing import Any

from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe

#: ``level1-ifs`` 0.6: largest waffle-spot fit error (px) at which a channel keeps its own star
#: centre (the issue's centring goal is 0.1 px; the fits of channels whose spots are well inside
#: the field have errors of 0.01-0.14 px on the simulated nights)
MAX_CENTER_ERR_PX = 0.15


class IfsLevel1Parameters(RecipeParameters):
    """No parameters: the IFS Level 1 uses the documented defaults (docs/ifs.md)."""


@register_recipe
class IfsLevel1Recipe(Recipe):
    """IFS raw sequence + calibrations -> ``level1_ifs.fits`` (cube (39, frames, y, x), angles,
    wavelengths, waffle centres, PSF cube of the OBJECT,FLUX files), by
    :func:`hcdc.instruments.sphere.ifs.level1.reduce_ifs`."""

    name = "level1-ifs"
    version = "0.3"
    product_level = 1
    product_type = "level1-ifs-cube"
    description = (
        "IFS raw sequence -> spectral Level 1 cube with PSF, cross-talk corrected "
        "(hcdc.instruments.sphere.ifs.level1)"
    )
    Parameters = IfsLevel1Parameters
    inputs = (Port("raw", DataKind.RAW_FILES, "raw IFS files of one sequence and its calibrations"),)
    outputs = (
        Port("product", DataKind.LEVEL1, "level1_ifs.fits (read with hcdc.instruments.sphere.ifs.level1)"),
        Port("summary", DataKind.VALUE, "cube shape, mode, wavelength range (nm), frames, PSF frames"),
    )
    #: reduce_ifs options of this version
    with_psf = True
    anamorphism = True
    crosstalk = True
    #: per-frame AO conditions from the SPARTA inputs (0.4)
    with_conditions = False
    #: band-edge spectral response from the IFU flat divided out (0.5)
    band_response = False
    #: largest spot-fit error (px) of a channel's own star centre (0.6); None: no bound
    max_center_err_px: float | None = None

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from astropy.io import fits

        from hcdc.instruments.sphere.ifs import level1

        with context.timer("reduce"):
            path = level1.reduce_ifs(
                inputs["raw"],
                context.work_dir / "level1",
                psf=self.with_psf,
                anamorphism=self.anamorphism,
                crosstalk=self.crosstalk,
                band_response=self.band_response,
                # only 0.6 passes it: older versions' calls stay what they were
                **({} if self.max_center_err_px is None else {"max_center_err_px": self.max_center_err_px}),
            )
        product = level1.read_level1_ifs(path)
        summary = {
            "shape": list(product.cube.shape),
            "mode": product.header["HIERARCH HCDC IFSMODE"],
            "wavelength_range_nm": [float(product.wavelengths_nm[0]), float(product.wavelengths_nm[-1])],
            "frames": len(product.frames),
        }
        if self.with_psf:
            summary["psf_frames"] = 0 if product.psf is None else int(product.psf.shape[1])
        if self.band_response:
            with fits.open(path) as hdul:
                resp = hdul["BAND_RESPONSE"].data
                summary["band_response_first_last"] = [round(float(resp[0]), 4), round(float(resp[-1]), 4)]
        if self.with_conditions:
            summary.update(self._conditions(inputs["raw"], path, context))
        context.log(f"Level 1 IFS cube {summary['shape']}")
        return {"product": path, "summary": summary}

    def _conditions(self, raw: list, path: Any, context: RecipeContext) -> dict[str, Any]:
        """Per-frame AO conditions from the SPARTA files among the raw inputs; the summary
        entries they add (the same as ``level1-irdis`` 1.1's)."""
        from hcdc.instruments.sphere.frame_conditions import conditions_summary, telemetry_files
        from hcdc.instruments.sphere.ifs.frame_conditions import add_ifs_conditions

        sparta = telemetry_files(raw)
        with context.timer("conditions"):
            conditions = add_ifs_conditions(path, sparta)
        for problem in conditions.meta["problems"]:
            context.log(f"SPARTA file not used: {problem}", level="WARNING")
        covered = int((~conditions["NO_TELEMETRY"]).sum())
        context.log(
            f"AO conditions: {len(sparta)} SPARTA file(s), {covered}/{len(conditions)} frames with telemetry"
        )
        return {
            "ao_telemetry_files": len(sparta),
            "frames_with_ao_telemetry": covered,
            "ao_conditions": conditions_summary(conditions),
        }


@register_recipe
class IfsLevel1RecipeV02(IfsLevel1Recipe):
    """``level1-ifs`` 0.2: PSF cube and anamorphism, no cross-talk correction (kept for reruns)."""

    version = "0.2"
    description = "IFS raw sequence -> spectral Level 1 cube with PSF (no cross-talk correction)"
    crosstalk = False


@register_recipe
class IfsLevel1RecipeV01(IfsLevel1Recipe):
    """``level1-ifs`` 0.1: no PSF cube, no anamorphism correction (kept for reruns)."""

    version = "0.1"
    description = "IFS raw sequence -> spectral Level 1 cube (first version: no PSF, no anamorphism)"
    with_psf = False
    anamorphism = False
    crosstalk = False


@register_recipe
class IfsLevel1RecipeV04(IfsLevel1Recipe):
    """``level1-ifs`` 0.4: the Level 1 of 0.3 (cross-talk corrected) plus the per-frame AO conditions
    (``CONDITIONS`` / ``AO_FILES`` in ``level1_ifs.fits``, ``ao_conditions`` in the summary)."""

    version = "0.4"
    description = "IFS raw sequence -> cross-talk-corrected Level 1 cube with PSF and AO conditions"
    with_conditions = True


@register_recipe
class IfsLevel1RecipeV05(IfsLevel1Recipe):
    """``level1-ifs`` 0.5: 0.4 (cross-talk corrected, AO conditions) plus the band-edge spectral
    response from the IFU flat divided out (``HCDC BANDRESP``, ``BAND_RESPONSE`` HDU)."""

    version = "0.5"
    description = (
        "IFS raw sequence -> cross-talk-corrected Level 1 cube with PSF, AO conditions and "
        "band-edge spectral response"
    )
    with_conditions = True
    band_response = True


@register_recipe
class IfsLevel1RecipeV06(IfsLevel1Recipe):
    """``level1-ifs`` 0.6: 0.5 with the star centre of a channel whose waffle-spot fit error exceeds
    :data:`MAX_CENTER_ERR_PX` replaced by the median centre of the channels within it
    (``HCDC CENMAXER``)."""

    version = "0.6"
    description = (
        "IFS raw sequence -> cross-talk-corrected Level 1 cube with PSF, AO conditions, band-edge "
        "spectral response and star centres only from well-measured waffle spots"
    )
    with_conditions = True
    band_response = True
    max_center_err_px = MAX_CENTER_ERR_PX
