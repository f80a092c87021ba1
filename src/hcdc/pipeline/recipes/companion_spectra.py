"""``l3-companion-spectra``: the contrast spectrum (per wavelength, with errors) of every companion
detected in a spectral Level 2 product, measured on its Level 1 cube
(:func:`hcdc.science.postprocessing.spectrum.companion_spectrum`), written as a Level 3 FITS
product ``companion_spectra.fits``:

* primary header: ``PRODTYPE`` ``companion-spectra``, the Level 2 algorithm (``ALGORITH``) and its
  parameters (``PARAMS``, JSON), ``PIXSCALE`` (mas/px), ``NFAKES``, the Level 1 and Level 2 inputs;
* ``COMPANIONS`` table, one row per companion: ``ID``, ``X``/``Y`` (px on the Level 2 image),
  ``SEP_PX``, ``SEP_MAS``, ``PA`` (deg east of north), ``SNR`` (Level 2), ``C0`` (contrast of the
  fakes), ``NFAKES``;
* ``SPECTRUM`` table, one row per companion and wavelength: ``ID``, ``WAVELENGTH`` (µm),
  ``CONTRAST`` (companion / star flux in a 1-FWHM aperture), ``CONTRAST_ERR`` (1 sigma), ``SNR``
  (contrast / error), ``THROUGHPUT`` (of the Level 2 algorithm at the companion's separation).

1.1 leaves out the detections that are a brighter companion's own spectral (radial) residual
(:func:`hcdc.science.postprocessing.spectral_lobes.spectral_residuals`: SDI/ASDI spread a
companion radially over the wavelength span; its positive lobe beyond the negative one reached
S/N 6.1 on the simulated IFS night); they are named in the summary (``spectral_residuals``) and
the log. 1.0 stays registered and measures every detection.

1.2 measures each spectrum by negative fake companions fitted per channel
(:func:`hcdc.science.postprocessing.spectrum_negfc.negfc_spectrum`) when the Level 2 reduction is
ASDI ``mode='single'`` (the IFS default): the companion's position is fixed from the Level 2
image, its 39 fluxes are those that null it in every channel's residual image, and the errors
come from ``n_fakes`` injection–recovery trials of the fitted spectrum at the same separation
(``NFAKES`` then counts the trials; ``C0`` and ``THROUGHPUT`` are NaN: no throughput is used).
Other spectral reductions fall back to 1.1's fake injection (logged; ``METHOD`` says which).
Cost on the simulated small IFS night (39 x 4 frames, 145 px): ~1 s per fit on an idle core, 1 + n_fakes fits
per companion; 1.1 needs 2 reductions per companion (docs/ifs.md §4).

1.3 subtracts from the NEGFC spectrum the mean (fit − injected) of its own trials, per channel:
the estimator's bias where the truth is known (a model misplaced by Level 2's astrometric error
always loses flux; the basis absorbs part of the companion); the error is then the trials' scatter
about that mean x sqrt(1 + 1/n). The ``SPECTRUM`` table gets a ``BIAS`` column (contrast units,
already subtracted). Same fits, same cost as 1.2. Measured on the small IFS nights seeds 0, 1, 3:
channels within 10 % of the truth 92.5 -> 94 %, 67 -> 78.5 %, 58.5 -> 68.5 % (both companions
together), medium seed 0 74 -> 81.5 % but its rms 0.091 -> 0.099: the IFS workflow keeps 1.2
(docs/ifs.md §4 "Level 3 1.3").

1.4 is 1.3 with the companion's position fitted with its fluxes (one sub-pixel position shared by
all channels, :func:`~hcdc.science.postprocessing.spectrum_negfc.fit_spectrum_and_position`), for
the companion and for each trial (started at its offset position): Level 2's positions of the
simulated IFS companions are 0.15-0.3 px inside the truth on every seed, and once the Level 1 star
centres are right per channel (``level1-ifs`` 0.6) that offset tilts or dents the spectrum by
10-20 % (docs/ifs.md §4 "What S/N >= 20 means, and 1.4"). ~5x the CPU of 1.3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe

PRODUCT_NAME = "companion_spectra.fits"
PRODUCT_TYPE = "companion-spectra"


class CompanionSpectraParameters(RecipeParameters):
    """Parameters of the companion spectra."""

    n_fakes: int = Field(
        8,
        ge=3,
        le=40,
        description="fakes per companion (throughput and error); 1.2 with NEGFC: injection-recovery trials",
    )
    max_companions: int = Field(5, ge=1, description="at most this many detections, highest S/N first")
    min_snr: float | None = Field(
        None, gt=0, description="only detections of at least this Level 2 S/N (None: every detection)"
    )


@register_recipe
class CompanionSpectra(Recipe):
    """Level 1 spectral cube + its Level 2 product -> Level 3 companion spectra (module doc)."""

    name = "l3-companion-spectra"
    version = "1.0"
    product_level = 3
    product_type = PRODUCT_TYPE
    description = "Spectral Level 2 detections -> contrast spectra with errors (fake injection per channel)"
    Parameters = CompanionSpectraParameters
    #: leave out the detections that are a brighter one's spectral residual (1.1)
    drop_spectral_residuals = False
    #: spectra by NEGFC per channel where the Level 2 reduction is ASDI single (1.2)
    negfc = False
    #: NEGFC: subtract the injection-recovery trials' mean error (their bias) from the spectrum,
    #: and write it as the SPECTRUM table's BIAS column (1.3)
    negfc_bias_correction = False
    #: NEGFC: fit one sub-pixel position with the fluxes, for the companion and every trial (1.4)
    negfc_fit_position = False
    inputs = (
        Port("level1", DataKind.LEVEL1, "Level 1 spectral product (wavelengths, frames, y, x) with PSF"),
        Port("level2", DataKind.LEVEL2, "Level 2 product of a spectral algorithm on that Level 1"),
    )
    outputs = (
        Port("product", DataKind.PATH, "companion_spectra.fits (Level 3)"),
        Port("summary", DataKind.VALUE, "per companion: separation, PA, spectrum summary"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        import numpy as np

        from hcdc.pipeline.recipes.postprocess import PostprocessParameters, _level1_inputs
        from hcdc.science.orientation import oriented_cube
        from hcdc.science.postprocessing.base import get_algorithm
        from hcdc.science.postprocessing.products import ProductError, read_product
        from hcdc.science.postprocessing.run import crop_slices, prepare_psfs
        from hcdc.science.postprocessing.spectrum import companion_spectrum
        from hcdc.science.postprocessing.spectrum_negfc import negfc_spectrum

        assert isinstance(params, CompanionSpectraParameters)
        try:
            level2 = read_product(inputs["level2"])
        except (ProductError, OSError) as exc:
            raise RecipeInputError(f"Level 2 product {inputs['level2']}: {exc}") from exc
        spec = get_algorithm(level2.algorithm)
        if not spec.spectral:
            raise RecipeInputError(
                f"Level 2 product {inputs['level2']}: algorithm {level2.algorithm!r} is not spectral "
                "(companion spectra need SDI/ASDI on a spectral cube)"
            )
        with context.timer("read"):
            data = _level1_inputs(inputs["level1"], PostprocessParameters(algorithm=level2.algorithm))
        if data.get("psf") is None or data.get("wavelengths") is None:
            raise RecipeInputError(f"Level 1 product {inputs['level1']}: no PSF or no wavelengths")
        cube = oriented_cube(data["cube"], data["orientation"])
        size = level2.image.shape[-1]
        ys, xs = crop_slices(cube.shape, (size - 1) / 2)
        cube = np.ascontiguousarray(cube[:, :, ys, xs], dtype=np.float32)
        if cube.shape[-1] != size:
            raise RecipeInputError(
                f"Level 2 image is {size} px wide but the Level 1 cube {cube.shape[-1]} px: not its Level 1"
            )
        wavelengths = np.asarray(data["wavelengths"], dtype=np.float64)
        psfs, fwhms, fluxes = prepare_psfs(oriented_cube(data["psf"], data["orientation"]), wavelengths.size)
        algo_params = {k: v for k, v in level2.params.items() if k not in {"fwhm", "wavelengths"}}
        detections = sorted(level2.detections, key=lambda d: -d.snr)
        if params.min_snr is not None:
            detections = [d for d in detections if d.snr >= params.min_snr]
        residuals = []
        if self.drop_spectral_residuals and detections:
            from hcdc.science.postprocessing.spectral_lobes import spectral_residuals

            flagged = spectral_residuals(
                detections,
                level2.image,
                fwhm=float(np.mean(fwhms)),
                rotation_deg=float(np.ptp(np.asarray(data["angles"], dtype=np.float64))),
                wavelength_span=float(wavelengths.max() / wavelengths.min()),
            )
            for i, parent in sorted(flagged.items()):
                d, c = detections[i], detections[parent]
                context.log(
                    f"detection at {d.separation_px:.1f} px, PA {d.pa_deg:.1f} deg (S/N {d.snr:.1f}) "
                    f"left out: spectral residual of the one at {c.separation_px:.1f} px, "
                    f"PA {c.pa_deg:.1f} deg"
                )
                residuals.append(
                    {
                        "x": float(d.x),
                        "y": float(d.y),
                        "separation_px": float(d.separation_px),
                        "pa_deg": float(d.pa_deg),
                        "level2_snr": float(d.snr),
                        "of_separation_px": float(c.separation_px),
                        "of_pa_deg": float(c.pa_deg),
                    }
                )
            detections = [d for i, d in enumerate(detections) if i not in flagged]
        detections = detections[: params.max_companions]
        context.log(f"{len(detections)} companion(s), {params.n_fakes} fakes each, {level2.algorithm}")
        per_wl = level2.cube if level2.cube is not None and level2.cube.shape[0] == wavelengths.size else None
        use_negfc = self.negfc and _negfc_applies(level2.algorithm, algo_params)
        method = METHOD_NEGFC if use_negfc else METHOD_FAKES
        if self.negfc and not use_negfc:
            context.log(
                f"NEGFC per channel needs ASDI mode='single'; {level2.algorithm} {algo_params}: "
                "fake injection per channel (1.1's method) instead"
            )
        spectra, measured = [], []
        with context.timer("spectra"):
            for i, det in enumerate(detections):
                context.progress("companion spectra", i, len(detections))
                try:
                    if use_negfc:
                        spectra.append(
                            negfc_spectrum(
                                cube,
                                data["angles"],
                                wavelengths,
                                np.stack(psfs),
                                np.asarray(fluxes),
                                np.asarray(fwhms),
                                x=det.x,
                                y=det.y,
                                ncomp=int(algo_params.get("ncomp", 10)),
                                mask_center_px=algo_params.get("mask_center_px"),
                                collapse=str(algo_params.get("collapse", "median")),
                                n_trials=params.n_fakes,
                                position_err=_position_err(det),
                                # only 1.3 passes it: 1.2's call stays what it was
                                **({"bias_correction": True} if self.negfc_bias_correction else {}),
                                **({"fit_position": True} if self.negfc_fit_position else {}),
                            )
                        )
                    else:
                        spectra.append(
                            companion_spectrum(
                                cube,
                                data["angles"],
                                wavelengths,
                                np.stack(psfs),
                                np.asarray(fluxes),
                                np.asarray(fwhms),
                                algorithm=level2.algorithm,
                                params=algo_params,
                                x=det.x,
                                y=det.y,
                                n_fakes=params.n_fakes,
                                per_wavelength=per_wl,
                            )
                        )
                    measured.append(det)
                except ValueError as exc:  # too close to the star for fakes, no positive signal
                    context.log(f"detection at ({det.x:.1f}, {det.y:.1f}) px skipped: {exc}")
            context.progress("companion spectra", len(detections), len(detections))
        detections = measured
        with context.timer("write"):
            path = _write(
                context.output_path(PRODUCT_NAME),
                level2,
                detections,
                spectra,
                params,
                inputs,
                method,
                bias_column=self.negfc_bias_correction,
            )
        summary = {
            "companions": [
                {
                    "id": i + 1,
                    "separation_mas": None
                    if level2.pixel_scale_mas is None
                    else float(s.separation_px * level2.pixel_scale_mas),
                    "separation_px": float(s.separation_px),
                    "pa_deg": float(s.pa_deg),
                    "level2_snr": float(det.snr),
                    "median_contrast": float(np.nanmedian(s.contrast))
                    if np.isfinite(s.contrast).any()
                    else None,
                    "median_snr": float(np.nanmedian(s.snr)) if np.isfinite(s.snr).any() else None,
                }
                for i, (det, s) in enumerate(zip(detections, spectra, strict=True))
            ]
        }
        if self.drop_spectral_residuals:
            summary["spectral_residuals"] = residuals
        if self.negfc:
            summary["method"] = method
        return {"product": path, "summary": summary}


@register_recipe
class CompanionSpectraV11(CompanionSpectra):
    """``l3-companion-spectra`` 1.1: 1.0 without the detections that are a brighter companion's
    spectral residual (module doc)."""

    version = "1.1"
    description = (
        "Spectral Level 2 detections -> contrast spectra with errors (fake injection per channel); "
        "spectral residuals of brighter companions left out"
    )
    drop_spectral_residuals = True


@register_recipe
class CompanionSpectraV12(CompanionSpectraV11):
    """``l3-companion-spectra`` 1.2: 1.1 with the spectra by negative fake companions fitted per
    channel when the Level 2 reduction is ASDI single (module doc)."""

    version = "1.2"
    description = (
        "Spectral Level 2 detections -> contrast spectra with errors (NEGFC per channel for ASDI "
        "single, fake injection otherwise); spectral residuals of brighter companions left out"
    )
    negfc = True


@register_recipe
class CompanionSpectraV13(CompanionSpectraV12):
    """``l3-companion-spectra`` 1.3: 1.2 with the NEGFC spectrum corrected for the bias its
    injection-recovery trials measure (module doc)."""

    version = "1.3"
    description = (
        "Spectral Level 2 detections -> contrast spectra with errors (NEGFC per channel for ASDI "
        "single, bias-corrected by its injection-recovery trials; fake injection otherwise); "
        "spectral residuals of brighter companions left out"
    )
    negfc_bias_correction = True


METHOD_FAKES = "fake injection per channel"
METHOD_NEGFC = "NEGFC per channel"


def _negfc_applies(algorithm: str, algo_params: dict[str, Any]) -> bool:
    """Whether the Level 2 reduction is one the NEGFC spectrum models: ASDI ``mode='single'``."""
    return algorithm == "asdi" and algo_params.get("mode", "single") == "single"


def _write(
    path: Path,
    level2: Any,
    detections: list[Any],
    spectra: list[Any],
    params: Any,
    inputs: dict,
    method: str = METHOD_FAKES,
    bias_column: bool = False,
) -> Path:
    import numpy as np
    from astropy.io import fits

    import hcdc
    from hcdc.science.fits_cards import set_card
    from hcdc.science.postprocessing.products import params_to_json

    primary = fits.PrimaryHDU()
    h = primary.header
    set_card(h, "ORIGIN", "hcdc", "software that wrote this file")
    set_card(h, "PRODTYPE", PRODUCT_TYPE, "Level 3 companion spectra")
    set_card(h, "HCDCVER", hcdc.__version__, "hcdc software version")
    set_card(h, "ALGORITH", level2.algorithm, "Level 2 algorithm (hcdc registry name)")
    set_card(h, "PARAMS", params_to_json(level2.params), "Level 2 algorithm parameters, JSON")
    if level2.pixel_scale_mas:
        set_card(h, "PIXSCALE", float(level2.pixel_scale_mas), "[mas/px] plate scale")
    set_card(h, "NFAKES", int(params.n_fakes), "fakes per companion")
    if method == METHOD_FAKES:
        set_card(h, "METHOD", method, "see hcdc.science.postprocessing.spectrum")
    else:
        set_card(h, "METHOD", method, "see hcdc.science.postprocessing.spectrum_negfc")
    set_card(h, "LEVEL1", Path(inputs["level1"]).name, "Level 1 input")
    set_card(h, "LEVEL2", Path(inputs["level2"]).name, "Level 2 input")
    scale = level2.pixel_scale_mas or np.nan
    companions = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="ID", format="J", array=np.arange(1, len(spectra) + 1)),
            fits.Column(name="X", format="D", unit="pix", array=[d.x for d in detections]),
            fits.Column(name="Y", format="D", unit="pix", array=[d.y for d in detections]),
            fits.Column(name="SEP_PX", format="D", unit="pix", array=[s.separation_px for s in spectra]),
            fits.Column(
                name="SEP_MAS", format="D", unit="mas", array=[s.separation_px * scale for s in spectra]
            ),
            fits.Column(name="PA", format="D", unit="deg", array=[s.pa_deg for s in spectra]),
            fits.Column(name="SNR", format="D", array=[d.snr for d in detections]),
            fits.Column(name="C0", format="D", array=[getattr(s, "c0", np.nan) for s in spectra]),
            fits.Column(name="NFAKES", format="J", array=[_positions(s).size for s in spectra]),
        ],
        name="COMPANIONS",
    )

    def column(attr: str) -> np.ndarray:
        # a NEGFC spectrum has no throughput: NaN in its rows
        arrays = [
            np.asarray(getattr(s, attr, np.full(s.wavelengths_um.size, np.nan)), dtype=np.float64)
            for s in spectra
        ]
        return np.concatenate(arrays) if arrays else np.zeros(0)

    ids = (
        np.concatenate([np.full(s.wavelengths_um.size, i + 1) for i, s in enumerate(spectra)])
        if spectra
        else []
    )
    spectrum = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="ID", format="J", array=np.asarray(ids, dtype=np.int32)),
            fits.Column(name="WAVELENGTH", format="D", unit="um", array=column("wavelengths_um")),
            fits.Column(name="CONTRAST", format="D", array=column("contrast")),
            fits.Column(name="CONTRAST_ERR", format="D", array=column("contrast_err")),
            fits.Column(name="SNR", format="D", array=column("snr")),
            fits.Column(name="THROUGHPUT", format="D", array=column("throughput")),
        ]
        + ([fits.Column(name="BIAS", format="D", array=column("bias"))] if bias_column else []),
        name="SPECTRUM",
    )
    fits.HDUList([primary, companions, spectrum]).writeto(path, overwrite=True)
    return path


def _positions(spectrum: Any) -> Any:
    """Position angles of the fakes (fake injection) or of the trials (NEGFC) of a spectrum."""
    return spectrum.fake_pas_deg if hasattr(spectrum, "fake_pas_deg") else spectrum.trial_pas_deg


def _position_err(detection: Any) -> tuple[float, float] | None:
    """Level 2's 1-sigma astrometric errors of a detection (radial px, PA deg) when it has them."""
    import math

    dr, dpa = float(detection.separation_err_px), float(detection.pa_err_deg)
    return (dr, dpa) if math.isfinite(dr) and math.isfinite(dpa) else None


@register_recipe
class CompanionSpectraV14(CompanionSpectraV13):
    """``l3-companion-spectra`` 1.4: 1.3 with the companion's position fitted with its fluxes, for
    the companion and its trials (module doc)."""

    version = "1.4"
    description = (
        "Spectral Level 2 detections -> contrast spectra with errors (NEGFC per channel for ASDI "
        "single with the position fitted, bias-corrected by its injection-recovery trials; fake "
        "injection otherwise); spectral residuals of brighter companions left out"
    )
    negfc_fit_position = True
