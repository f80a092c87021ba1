"""``l2-postprocess``: Level 2 post-processing of a Level 1 product or a user cube
(:func:`hcdc.science.postprocessing.run.postprocess`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from hcdc.instruments.sphere.irdis import level1 as _level1
from hcdc.pipeline import provenance as _prov
from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe


def _known_algorithms() -> dict[str, Any]:
    """The Level 2 algorithm registry (importing the package registers every algorithm)."""
    import hcdc.science.postprocessing as postprocessing

    return postprocessing.ALGORITHMS


class PostprocessParameters(RecipeParameters):
    """Parameters of :func:`hcdc.science.postprocessing.run.postprocess`."""

    algorithm: str = Field("pca", description="registered Level 2 algorithm (hcdc.science.postprocessing)")
    ncomp: int | None = Field(
        None, gt=0, description="principal components (PCA family); added to algorithm_params"
    )
    algorithm_params: dict[str, Any] = Field(
        default_factory=dict, description='other parameters of the algorithm, e.g. {"annulus_width": 2}'
    )
    fwhm: float | None = Field(None, gt=0, description="PSF FWHM, px (measured on the PSF when None)")
    pixel_scale_mas: float | None = Field(
        None, gt=0, description="plate scale, mas/px (Level 1 IRDIS input: 12.255 when None)"
    )
    star_flux: float | None = Field(
        None, gt=0, description="star flux in a 1-FWHM aperture (from the PSF when None)"
    )
    crop_radius: float | None = Field(None, gt=0, description="process only this central radius, px")
    detection_threshold: float | None = Field(
        None, gt=0, description="fixed S/N detection threshold (None: Student threshold at 5-sigma FPF)"
    )
    compute_contrast: bool = Field(True, description="compute 5-sigma contrast curves")
    contrast_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the contrast curve (sigma, nbranch, fc_snr, step, ...)"
    )
    completeness: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="also the completeness curve: contrast at which this fraction (e.g. 0.95) of fakes "
        "is recovered by hcdc's detection (costly: ~20 reductions per separation and level)",
    )
    completeness_options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the completeness curve (n_fakes, ladder, max_levels, ...)",
    )
    negfc: bool = Field(False, description="re-measure detections by negative fake companion fit")
    previews: bool = Field(True, description="write PNG previews next to the product")
    angle_convention: Literal["parallactic", "derotation"] | None = Field(
        None,
        description="convention of the angles (docs/conventions.md); None: from the Level 1 header, "
        "'parallactic' (VIP/pyKLIP angle_list) for a user cube",
    )
    pupil_offset_deg: float | None = Field(
        None, description="pupil offset added to a user cube's angles, deg (orientation known with it)"
    )
    true_north_deg: float | None = Field(None, description="true-north correction added to the angles, deg")
    transpose: bool = Field(False, description="detector mirrored (x<->y swapped): transpose the frames")
    ra_deg: float | None = Field(None, ge=0, lt=360, description="target RA (ICRS, deg) for a celestial WCS")
    dec_deg: float | None = Field(None, ge=-90, le=90, description="target Dec (ICRS, deg)")
    recenter: bool = Field(False, description="move a user cube's star onto (n//2, n//2) first")
    center_method: Literal["auto", "psf", "negative-gaussian"] = Field(
        "auto", description="star fit of the position check / recentring"
    )

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, name: str) -> str:
        known = _known_algorithms()
        if name not in known:
            raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(known))}")
        return name

    def algorithm_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.algorithm_params)
        if self.ncomp is not None:
            kwargs["ncomp"] = self.ncomp
        return kwargs


def _read_image(path: Path, what: str, ndims: tuple[int, ...]) -> tuple[Any, Any]:
    """Data and header of the first image HDU with data; errors name the file."""
    import numpy as np
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None and hdu.data.size:
                    data, header = np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()
                    break
            else:
                raise RecipeInputError(f"{what} file {path}: no image data")
    except OSError as exc:
        raise RecipeInputError(f"{what} file {path}: not a readable FITS file ({exc})") from exc
    if data.ndim not in ndims:
        raise RecipeInputError(
            f"{what} file {path}: expected {' or '.join(map(str, ndims))}-D data, got {data.shape}"
        )
    return data, header


def _read_vector(path: Path, what: str) -> Any:
    """A float vector from a FITS image or a text column; errors name the file."""
    import numpy as np

    if path.suffix.lower() in (".txt", ".dat", ".csv"):
        try:
            values = np.loadtxt(
                path, dtype=np.float64, delimiter="," if path.suffix.lower() == ".csv" else None
            )
        except ValueError as exc:
            raise RecipeInputError(f"{what} file {path}: not a column of numbers ({exc})") from exc
    else:
        values = _read_image(path, what, (1, 2))[0].astype(np.float64)
    return np.ravel(values)


@register_recipe
class Postprocess(Recipe):
    """Level 2 post-processing by :func:`hcdc.science.postprocessing.run.postprocess`.

    Input either a Level 1 product (``level1``: cube, derotation angles, PSF and wavelengths
    read with :func:`hcdc.instruments.sphere.irdis.level1.read_level1`; the PSF is the mean of the flux
    frames; the angle convention, whether the angles are sky-aligned and the pointing come from its
    header) or a user cube (``cube`` FITS (frames, y, x) or (wavelengths, frames, y, x) with
    ``angles``, parallactic by default, and optionally ``psf``, ``wavelengths``, ``reference``;
    its star position is checked, and fixed with ``recenter``). Writes the Level 2 FITS product
    (:func:`hcdc.science.postprocessing.products.write_product`) and PNG previews.
    """

    name = "l2-postprocess"
    product_level = 2
    product_type = "level2-image"
    version = "1.1"
    description = "Level 1 cube -> Level 2 image, S/N map, contrast curves, detections (postprocess)"
    Parameters = PostprocessParameters
    inputs = (
        Port("level1", DataKind.LEVEL1, "Level 1 product (instead of cube + angles)", optional=True),
        Port(
            "cube",
            DataKind.PATH,
            "user cube, FITS (frames, y, x) or (wavelengths, frames, y, x)",
            optional=True,
        ),
        Port(
            "angles",
            DataKind.PATH,
            "angles of a user cube, deg (FITS or text), parallactic unless angle_convention says",
            optional=True,
        ),
        Port("psf", DataKind.PATH, "off-axis PSF, FITS (y, x) or (wavelengths, y, x)", optional=True),
        Port("wavelengths", DataKind.PATH, "wavelengths of a user cube, um (FITS or text)", optional=True),
        Port("reference", DataKind.PATH, "reference-star cube for RDI, FITS", optional=True),
    )
    outputs = (
        Port("product", DataKind.LEVEL2, "Level 2 FITS product"),
        Port("summary", DataKind.VALUE, "algorithm, detections, contrast at standard separations"),
        Port("previews", DataKind.VALUE, "PNG previews {kind: path}", optional=True),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.science.orientation import oriented_cube
        from hcdc.science.postprocessing.previews import write_previews
        from hcdc.science.postprocessing.products import write_product
        from hcdc.science.postprocessing.run import postprocess

        assert isinstance(params, PostprocessParameters)
        with context.timer("read"):
            data = self._read_inputs(inputs, params)
        orientation = data["orientation"]
        for text in data["notes"]:
            context.log(text)
        context.log(
            f"cube {tuple(data['cube'].shape)}, algorithm {params.algorithm} {params.algorithm_kwargs()}"
        )
        with context.timer("postprocess"):
            psf, reference = data.get("psf"), data.get("reference")
            result = postprocess(
                oriented_cube(data["cube"], orientation),
                data["angles"],
                algorithm=params.algorithm,
                psf=None if psf is None else oriented_cube(psf, orientation),
                wavelengths=data.get("wavelengths"),
                reference=None if reference is None else oriented_cube(reference, orientation),
                fwhm=params.fwhm,
                pixel_scale_mas=data["pixel_scale_mas"],
                star_flux=params.star_flux,
                params=params.algorithm_kwargs(),
                crop_radius=params.crop_radius,
                detection_threshold=params.detection_threshold,
                compute_contrast=params.compute_contrast,
                contrast_options=params.contrast_options or None,
                completeness=params.completeness,
                completeness_options=params.completeness_options or None,
                negfc=params.negfc,
                image_unit=data["unit"],
                inputs=data["input_names"],
                progress=context.progress,
                orientation=orientation,
            )
            result.warnings[:0] = data["warnings"]
        for text in result.warnings:
            context.log(f"warning: {text}")
        with context.timer("write"):
            product = write_product(result, context.output_path(f"level2_{params.algorithm}.fits"))
            previews = None
            if params.previews:
                written = write_previews(result, context.work_dir, stem=f"level2_{params.algorithm}")
                previews = {kind: str(path) for kind, path in written.items()}
        summary = result.summary()
        context.log(f"{len(summary['detections'])} detection(s)")
        return {"product": product, "summary": summary, "previews": previews}

    @staticmethod
    def _read_inputs(inputs: dict[str, Any], params: PostprocessParameters) -> dict[str, Any]:
        """Arrays for :func:`postprocess` from a Level 1 product or from user files, with the
        derotation angles and orientation (:mod:`hcdc.science.orientation`) and the notes and
        warnings of the star-position check (user cubes)."""
        import numpy as np

        from hcdc.science.calibration.recenter import check_cube_star
        from hcdc.science.orientation import derotation_angles
        from hcdc.science.postprocessing.run import estimate_fwhm

        if ("level1" in inputs) == ("cube" in inputs):
            raise RecipeInputError("give either a Level 1 product (level1) or a user cube (cube + angles)")
        if "level1" in inputs:
            from hcdc.instruments.sphere.constants import IRDIS_PIXEL_SCALE_MAS

            product = _level1.read_level1(inputs["level1"])
            psf = product.psf_cube.mean(axis=1) if product.psf_cube.shape[1] else None
            header = product.header
            convention = params.angle_convention or str(header.get("HIERARCH HCDC ANGCONV", "derotation"))
            # Level 1 DEROT includes the pupil offset and true north (products written before the
            # ANGSKY keyword existed too): the image is north up.
            sky = bool(header.get("HIERARCH HCDC ANGSKY", True)) and params.pupil_offset_deg is None
            try:
                angles, orientation = derotation_angles(
                    product.derot,
                    convention,
                    0.0 if sky else params.pupil_offset_deg,
                    0.0 if sky else params.true_north_deg,
                    params.transpose,
                )
                if sky:  # offsets already in DEROT: none added here
                    orientation = dataclasses.replace(orientation, pupil_offset_deg=None, true_north_deg=None)
                ra = params.ra_deg if params.ra_deg is not None else header.get("HIERARCH HCDC RA")
                dec = params.dec_deg if params.dec_deg is not None else header.get("HIERARCH HCDC DEC")
                if orientation.known and ra is not None and dec is not None:
                    orientation = orientation.with_pointing(float(ra), float(dec))
            except ValueError as exc:
                raise RecipeInputError(f"Level 1 product {inputs['level1']}: {exc}") from exc
            return {
                "cube": product.cube,
                "angles": angles,
                "orientation": orientation,
                "notes": [],
                "warnings": [],
                "psf": psf,
                "wavelengths": product.wavelengths_um,
                "pixel_scale_mas": params.pixel_scale_mas or IRDIS_PIXEL_SCALE_MAS,
                "unit": str(product.header.get("BUNIT", "ADU/s")),
                "input_names": {Path(inputs["level1"]).name: _prov.sha256_path(inputs["level1"])},
            }
        if "angles" not in inputs:
            raise RecipeInputError(
                "a user cube needs its angles (input 'angles', parallactic unless angle_convention says)"
            )
        cube, header = _read_image(inputs["cube"], "cube", (3, 4))
        angles = _read_vector(inputs["angles"], "angles")
        if not np.all(np.isfinite(angles)):
            raise RecipeInputError(f"angles file {inputs['angles']}: contains NaN or infinite values")
        if angles.size != cube.shape[-3]:
            raise RecipeInputError(
                f"angles file {inputs['angles']}: {angles.size} angles for the {cube.shape[-3]} frames "
                f"of cube {inputs['cube']}"
            )
        try:
            angles, orientation = derotation_angles(
                angles,
                params.angle_convention or "parallactic",
                params.pupil_offset_deg,
                params.true_north_deg,
                params.transpose,
            )
            if orientation.known:
                orientation = orientation.with_pointing(params.ra_deg, params.dec_deg)
        except ValueError as exc:
            raise RecipeInputError(f"angles file {inputs['angles']}: {exc}") from exc
        data: dict[str, Any] = {"angles": angles, "orientation": orientation}
        if "psf" in inputs:
            data["psf"] = _read_image(inputs["psf"], "PSF", (2, 3))[0]
        fwhm = params.fwhm
        if fwhm is None and data.get("psf") is not None:
            fwhm = estimate_fwhm(data["psf"] if data["psf"].ndim == 2 else data["psf"][0])
        notes: list[tuple[str, str]] = []
        if fwhm is not None:
            try:
                cube, notes = check_cube_star(
                    cube, fwhm, f"cube {inputs['cube']}", params.recenter, params.center_method
                )
            except ValueError as exc:
                raise RecipeInputError(str(exc)) from exc
        data["cube"] = cube
        data["notes"] = [text for level, text in notes if level == "note"]
        data["warnings"] = [text for level, text in notes if level == "warning"]
        if "wavelengths" in inputs:
            data["wavelengths"] = _read_vector(inputs["wavelengths"], "wavelengths")
        if "reference" in inputs:
            data["reference"] = _read_image(inputs["reference"], "reference", (3, 4))[0]
        scale = params.pixel_scale_mas
        if scale is None and "PIXSCALE" in header:
            scale = float(header["PIXSCALE"])
        data["pixel_scale_mas"] = scale
        data["unit"] = str(header.get("BUNIT", "")).strip()
        data["input_names"] = {Path(p).name: _prov.sha256_path(p) for p in inputs.values()}
        return data
