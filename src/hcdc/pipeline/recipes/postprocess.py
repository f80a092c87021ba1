"""``l2-postprocess``: Level 2 post-processing of a Level 1 product or a user cube
(:func:`hcdc.science.postprocessing.run.postprocess`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

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


class PostprocessParametersV11(RecipeParameters):
    """Parameters of :func:`hcdc.science.postprocessing.run.postprocess` as ``l2-postprocess`` 1.1
    took them (1.2 added ``detection_fpf`` and ``output_stem``: :class:`PostprocessParameters`)."""

    algorithm: str = Field("pca", description="registered Level 2 algorithm (hcdc.science.postprocessing)")
    ncomp: int | None = Field(
        None, gt=0, description="principal components (PCA family); added to algorithm_params"
    )
    algorithm_params: dict[str, Any] = Field(
        default_factory=dict, description='other parameters of the algorithm, e.g. {"annulus_width": 2}'
    )
    fwhm: float | None = Field(None, gt=0, description="PSF FWHM, px (measured on the PSF when None)")
    pixel_scale_mas: float | None = Field(
        None,
        gt=0,
        description="plate scale, mas/px; None: the instrument's (Level 1 input) or the cube's PIXSCALE "
        "keyword (user cube; without either, separations and contrasts are in pixels only)",
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


class PostprocessParameters(PostprocessParametersV11):
    """Parameters of :func:`hcdc.science.postprocessing.run.postprocess` (``l2-postprocess`` 1.2 and 1.3)."""

    detection_fpf: float | None = Field(
        None, gt=0, lt=0.5, description="false-positive fraction of detections (None: Gaussian 5 sigma)"
    )
    output_stem: str | None = Field(
        None,
        pattern=r"^[^/\\\x00]+$",
        description="file names <stem>_L2.fits and <stem>_<preview>.png (hcdc postprocess: "
        "<cube>_<algorithm>); None: level2_<algorithm>.fits",
    )


class PostprocessParametersV13(PostprocessParameters):
    """Parameters of ``l2-postprocess`` 1.3: 1.2's and ``frame_selection``."""

    frame_selection: dict[str, Any] | None = Field(
        None,
        description="make a variant from selected frames only: criteria of "
        "hcdc.science.monitoring.selection.SelectionCriteria, e.g. "
        '{"strehl_quantile": 0.3} (best 70 % by Strehl), {"strehl_min": 0.8, "tau0_min_s": 0.003}, '
        '{"correlation_min": 0.9}; AO criteria need the Level 1 per-frame CONDITIONS table. '
        "None: all frames",
    )

    @field_validator("frame_selection")
    @classmethod
    def _criteria(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        from hcdc.science.monitoring.selection import SelectionCriteria

        return SelectionCriteria.from_mapping(value).as_dict()  # ValueError -> validation error


class PostprocessParametersV14(PostprocessParametersV13):
    """Parameters of ``l2-postprocess`` 1.4: 1.3's; ``angle_convention`` also takes
    ``'hcdc-clockwise'`` (hcdc's angles before 1.4), and ``'derotation'`` now means the
    vlt-sphere/VIP sense (docs/conventions.md)."""

    angle_convention: Literal["parallactic", "derotation", "hcdc-clockwise"] | None = Field(
        None,
        description="convention of the angles (docs/conventions.md): 'parallactic' (VIP/pyKLIP "
        "angle_list, the default for a user cube), 'derotation' (vlt-sphere *_derot.fits, VIP "
        "derotation angles: same sense, offsets usually included), 'hcdc-clockwise' (hcdc Level 1 "
        "products written before the sense was fixed); None: from the input's header",
    )


class PostprocessParametersV16(PostprocessParametersV14):
    """Parameters of ``l2-postprocess`` 1.6: 1.4's, ``calibrated_threshold`` (1.5's
    data-calibrated detection threshold, opted into rather than the default: docs/postprocessing.md,
    "Towards a default") and ``false_alarms_per_image`` (a threshold for a stated number of false
    S/N peaks per image: docs/postprocessing.md, "False peaks of the search over every pixel")."""

    calibrated_threshold: bool = Field(
        False,
        description="calibrate the detection threshold and the contrast curve's on the "
        "inverted-angle null map of the data (l2-postprocess 1.5's method; one more reduction); "
        "False: the Student threshold of detection_fpf. Ignored with a fixed detection_threshold",
    )
    false_alarms_per_image: float | None = Field(
        None,
        gt=0,
        lt=100,
        description="set the detection threshold (and the contrast curve's) so that this many false "
        "S/N peaks per image are expected on Gaussian noise as rough as the data's S/N map, searched "
        "at every pixel (random-field theory), e.g. 0.01; detection_fpf is then not used; with "
        "calibrated_threshold the null map's tail is calibrated at that threshold's fpf. None: the "
        "Student threshold of detection_fpf (about 0.003 false peaks per 128-px image at 5 sigma). "
        "Ignored with a fixed detection_threshold",
    )


@register_recipe
class Postprocess(Recipe):
    """Level 2 post-processing by :func:`hcdc.science.postprocessing.run.postprocess`.

    Input either a Level 1 product (``level1``), read by the instrument that wrote it
    (:func:`hcdc.instruments.registry.read_level1`: cube, angles, PSF, wavelengths and the
    instrument's plate scale; the angle convention, whether the angles are sky-aligned and the
    pointing come from its header), or a user cube (``cube`` FITS (frames, y, x) or (wavelengths,
    frames, y, x) with ``angles``, parallactic by default, and optionally ``psf``, ``wavelengths``,
    ``reference``; read by :mod:`hcdc.science.fits_inputs`; its star position is checked, and fixed
    with ``recenter``). Writes the Level 2 FITS product
    (:func:`hcdc.science.postprocessing.products.write_product`) and PNG previews; ``hcdc
    postprocess`` is this recipe run on a user's files.
    """

    name = "l2-postprocess"
    product_level = 2
    product_type = "level2-image"
    version = "1.6"
    #: :func:`postprocess`'s ``photometry_fakes_at_flux``: 1.6 injects a detection's photometry
    #: fakes at its flux estimate, iterated until it changes by less than its error (DETECTIONS
    #: card ``PHOTFAKE``, columns ``FAKEFLUX``/``FAKEITER``/``FAKECONV``, the summary's
    #: ``photometry_*`` keys); <= 1.5 at its S/N times the noise (~16 % low photometry at 3.5 FWHM)
    photometry_fakes_at_flux = True
    #: 1.6 writes the DETECTIONS header's ``SPECRES``/``SPECRnnn`` cards with their whole comments
    #: (long-string cards where needed); <= 1.5 with the comments astropy cut (same bytes)
    whole_card_comments = True
    #: :func:`postprocess`'s ``null_threshold``: 1.5 calibrates the detection threshold (and the
    #: contrast curve's) on the inverted-angle null map of the data
    #: (:mod:`hcdc.science.postprocessing.null_threshold`: cards ``DETNULL``/``DETNU``/``DETK``,
    #: contrast column ``SNR_THR``; one more reduction); <= 1.4: the Student threshold; None (1.6):
    #: the parameter ``calibrated_threshold`` decides (default False, the Student threshold)
    null_threshold: bool | None = None
    #: 1.4: ``derotation`` angles turn counter-clockwise (vlt-sphere/VIP/IRDAP sense) and a Level 1
    #: product's convention comes from its ``ROTSENSE`` card (none: hcdc's old clockwise sense);
    #: <= 1.3: ``derotation`` meant hcdc's clockwise sense (:data:`LEGACY_DEROTATION`)
    legacy_derotation = False
    #: ``x_scale`` of every Gaussian position fit (``detection.gaussian_fit_x_scale``):
    #: 1.4 fits with ``x_scale=1.0`` (deterministic: reruns give the same DETECTIONS); <= 1.3
    #: with scipy's default, as they were made
    fit_x_scale: float | None = 1.0
    #: :func:`postprocess`'s ``astrometric_errors``: 1.3 measures every detection's astrometric
    #: errors by fake injection (spectral algorithms and products without a PSF included, which
    #: the product's ASTERPSF card says); 1.2 only for ADI/RDI algorithms with a PSF; 1.1 none
    measures_astrometric_errors: bool | str = True
    #: 1.3 selects frames (``frame_selection``), records the frames used (``FRSEL*`` cards,
    #: ``FRAMESEL`` table) and the conditions and field rotation of the frames used in the summary
    records_frames = True
    #: :func:`postprocess`'s ``spectral_empty_majority``: from 1.3, a pixel of a cube with more
    #: than 2 wavelengths is left out of detection only when empty in most channels (IFS); before,
    #: when empty in any
    spectral_empty_majority = True
    #: :func:`postprocess`'s ``drop_spectral_residuals``: 1.4 leaves out a spectral (SDI/ASDI)
    #: algorithm's detections that are a brighter one's own radial spectral residual
    #: (:mod:`hcdc.science.postprocessing.spectral_lobes`) and lists them in the summary
    #: (``spectral_residuals``), the log and the DETECTIONS header (``SPECRES``); <= 1.3 keep them
    drop_spectral_residuals = True
    #: :func:`postprocess`'s ``aperture_noise_errors``: 1.4's ``FLUX_ERR``/``CONTRAST_ERR`` hold
    #: the aperture's photometric noise (``contrast / S/N``) in quadrature with the uncertainty of
    #: the fakes' mean throughput (card ``PHOTERR``); <= 1.3 the fakes' throughput spread only
    aperture_noise_errors = True
    description = "Level 1 cube -> Level 2 image, S/N map, contrast curves, detections (postprocess)"
    Parameters = PostprocessParametersV16
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
        from hcdc.science.postprocessing.detection import gaussian_fit_x_scale
        from hcdc.science.postprocessing.previews import write_previews
        from hcdc.science.postprocessing.products import write_product
        from hcdc.science.postprocessing.run import postprocess

        assert isinstance(params, PostprocessParametersV11)
        with context.timer("read"):
            data = self._read_inputs(inputs, params)
        frames = None
        if self.records_frames:
            with context.timer("select"):
                frames = _select_frames(data, getattr(params, "frame_selection", None), inputs)
            data["cube"], data["angles"] = frames.pop("cube"), frames.pop("angles")
            context.log(frames["log"])
        orientation = data["orientation"]
        for text in data["notes"]:
            context.log(text)
        context.log(
            f"cube {tuple(data['cube'].shape)}, algorithm {params.algorithm} {params.algorithm_kwargs()}"
        )
        with context.timer("postprocess"), gaussian_fit_x_scale(self.fit_x_scale):
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
                detection_fpf=getattr(params, "detection_fpf", None),  # 1.1: Gaussian 5 sigma
                compute_contrast=params.compute_contrast,
                contrast_options=params.contrast_options or None,
                completeness=params.completeness,
                completeness_options=params.completeness_options or None,
                negfc=params.negfc,
                astrometric_errors=self.measures_astrometric_errors,
                spectral_empty_majority=self.spectral_empty_majority,
                drop_spectral_residuals=self.drop_spectral_residuals,
                aperture_noise_errors=self.aperture_noise_errors,
                null_threshold=self._calibrates_threshold(params) and params.detection_threshold is None,
                photometry_fakes_at_flux=self.photometry_fakes_at_flux,
                false_alarms_per_image=getattr(params, "false_alarms_per_image", None),  # <= 1.5: none
                image_unit=data["unit"],
                inputs=data["input_names"],
                progress=context.progress,
                orientation=orientation,
            )
            result.warnings[:0] = data["warnings"]
        for text in result.warnings:
            context.log(f"warning: {text}")
        for r in result.spectral_residuals or ():
            context.log(
                f"detection at {r['separation_px']:.1f} px, PA {r['pa_deg']:.1f} deg (S/N {r['snr']:.1f}) "
                f"left out: spectral residual of the one at {r['of_separation_px']:.1f} px, "
                f"PA {r['of_pa_deg']:.1f} deg"
            )
        with context.timer("write"):
            stem = getattr(params, "output_stem", None)  # 1.1: level2_<algorithm>
            name = f"{stem}_L2.fits" if stem else f"level2_{params.algorithm}.fits"
            product = write_product(
                result,
                context.output_path(name),
                extra_cards=frames["cards"] if frames else (),
                extra_hdus=frames["hdus"] if frames else (),
                whole_comments=self.whole_card_comments,
            )
            previews = None
            if params.previews:
                written = write_previews(result, context.work_dir, stem=stem or f"level2_{params.algorithm}")
                previews = {kind: str(path) for kind, path in written.items()}
        summary = result.summary()
        summary["orientation_text"] = result.orientation.describe()
        summary["notes"] = data["notes"]
        if frames:
            summary.update(frames["summary"])
        context.log(f"{len(summary['detections'])} detection(s)")
        return {"product": product, "summary": summary, "previews": previews}

    def _calibrates_threshold(self, params: PostprocessParametersV11) -> bool:
        """Whether this run calibrates its detection threshold on a null map: the version's
        choice (1.4: no, 1.5: yes), or from 1.6 on the ``calibrated_threshold`` parameter."""
        if self.null_threshold is not None:
            return self.null_threshold
        return bool(getattr(params, "calibrated_threshold", False))

    def _read_inputs(self, inputs: dict[str, Any], params: PostprocessParametersV11) -> dict[str, Any]:
        """Arrays for :func:`postprocess` from a Level 1 product or from user files, with the
        derotation angles and orientation (:mod:`hcdc.science.orientation`) and the notes and
        warnings of the star-position check (user cubes)."""
        if ("level1" in inputs) == ("cube" in inputs):
            raise RecipeInputError("give either a Level 1 product (level1) or a user cube (cube + angles)")
        if "level1" in inputs:
            return _level1_inputs(inputs["level1"], params, self.legacy_derotation)
        return _user_cube_inputs(inputs, params, self.legacy_derotation)


def _convention(name: str | None, legacy: bool) -> str | None:
    """``name`` as a recipe version reads it: up to 1.3 (``legacy``) ``'derotation'`` was hcdc's
    clockwise sense (:data:`hcdc.science.orientation.LEGACY_DEROTATION`)."""
    from hcdc.science.orientation import LEGACY_DEROTATION

    return LEGACY_DEROTATION if legacy and name == "derotation" else name


def _select_frames(
    data: dict[str, Any], spec: dict[str, Any] | None, inputs: dict[str, Any]
) -> dict[str, Any]:
    """The frames a 1.3 product uses: all of them, or those ``spec`` (criteria of
    :class:`~hcdc.science.monitoring.selection.SelectionCriteria`) keeps, judged on the Level 1
    per-frame conditions (``data["conditions"]``) and/or on each frame's correlation with the
    median frame (first wavelength). Returns the cube and angles to use, the header cards and
    ``FRAMESEL`` table of the product, the summary entries (``frame_selection``, ``variant``,
    ``conditions`` (medians over the frames used), ``field_rotation_deg``) and a log line."""
    import numpy as np

    from hcdc.science.monitoring.conditions import conditions_medians
    from hcdc.science.monitoring.selection import (
        SelectionCriteria,
        field_rotation_deg,
        image_correlation,
        select_frames,
        selection_hdu,
    )

    cube, angles, conditions = data["cube"], np.asarray(data["angles"], dtype=float), data.get("conditions")
    n = angles.size
    source = inputs.get("level1") or inputs.get("cube")
    if conditions is not None and len(conditions) != n:
        raise RecipeInputError(f"{source}: CONDITIONS has {len(conditions)} rows for {n} frames")
    rotation_all = field_rotation_deg(angles)
    summary: dict[str, Any] = {
        "field_rotation_deg": rotation_all,
        "conditions": None if conditions is None else conditions_medians(conditions),
    }
    if spec is None:
        summary["frame_selection"] = None
        cards = [("HIERARCH HCDC FRSEL", False, "all frames used (no frame selection)")]
        return {
            "cube": cube,
            "angles": angles,
            "cards": cards,
            "hdus": [],
            "summary": summary,
            "log": f"all {n} frames used (field rotation {rotation_all:.1f} deg)",
        }
    criteria = SelectionCriteria.from_mapping(spec)
    if criteria.needs_conditions and conditions is None:
        raise RecipeInputError(
            f"{source}: frame selection by AO conditions ({criteria.describe()}) needs a Level 1 "
            "product with a per-frame CONDITIONS table (level1-irdis >= 1.1); this input has none"
        )
    table = conditions if conditions is not None else {"NO_TELEMETRY": np.zeros(n, dtype=bool)}
    scores = None
    if criteria.correlation_min is not None:
        first = cube[0] if cube.ndim == 4 else cube
        scores = image_correlation(first)
    selection = select_frames(table, criteria, scores)
    if selection.kept < 2:
        raise RecipeInputError(
            f"{source}: frame selection ({criteria.describe()}) keeps {selection.kept} of {n} frames; "
            "Level 2 needs at least 2"
        )
    keep = selection.keep
    used = np.flatnonzero(keep)
    rotation = field_rotation_deg(angles[keep])
    record = {
        "criteria": criteria.as_dict(),
        "description": criteria.describe(),
        **selection.summary(),
        "frames_used": used.tolist(),
        "field_rotation_all_deg": rotation_all,
    }
    summary.update(
        {
            "frame_selection": record,
            "variant": f"frames-selected-{criteria.key()}",
            "field_rotation_deg": rotation,
            "conditions": None if conditions is None else conditions_medians(conditions, keep),
            "conditions_all_frames": summary["conditions"],
        }
    )
    cards = [
        ("HIERARCH HCDC FRSEL", True, "frames selected (FRAMESEL table)"),
        ("HIERARCH HCDC FRSEL NFRAMES", n, "frames of the Level 1 sequence"),
        ("HIERARCH HCDC FRSEL NUSED", selection.kept, "frames used"),
        ("HIERARCH HCDC FRSEL KEY", criteria.key(), "criteria id (variant name)"),
        (
            "HIERARCH HCDC FRSEL CRITERIA",
            json.dumps(criteria.as_dict(), sort_keys=True, separators=(",", ":")),
            "selection criteria, JSON",
        ),
    ]
    hdus = [selection_hdu(selection, table, scores)]
    return {
        "cube": np.compress(keep, np.asarray(cube), axis=-3),
        "angles": angles[keep],
        "cards": cards,
        "hdus": hdus,
        "summary": summary,
        "log": f"frame selection ({criteria.describe()}): {selection.kept} of {n} frames kept, "
        f"field rotation {rotation:.1f} of {rotation_all:.1f} deg; "
        f"rejected by {selection.summary()['rejected_by']}",
    }


def _old_sense_warnings(name: str, convention: str | None, given: str | None, legacy: bool) -> list[str]:
    """The warning of ``l2-postprocess`` >= 1.4 when ``name`` declares hcdc's Level 1 ``derotation``
    angles without ``ROTSENSE = 'CCW'`` (written before the sense was fixed) and the user gave no
    convention: such angles are turned clockwise, as they were made, which is the wrong way for
    real pupil-tracking data. Nothing for older versions (they turn everything so) nor for a
    convention the user chose."""
    from hcdc.science.orientation import LEGACY_DEROTATION

    if legacy or given or convention != LEGACY_DEROTATION:
        return []
    return [
        f"{name} holds hcdc Level 1 'derotation' angles without ROTSENSE = 'CCW' (written before "
        "hcdc's rotation-sense fix): derotated clockwise, as they were made, which is wrong for "
        "real pupil-tracking data (companions smear, position angles are wrong); rerun its Level 1, "
        "or give angle_convention (docs/conventions.md, 'Rotation sense')"
    ]


def _level1_inputs(path: Path, params: PostprocessParametersV11, legacy: bool = False) -> dict[str, Any]:
    """A Level 1 product, read by the instrument that wrote it (:func:`hcdc.instruments.registry.read_level1`,
    which also gives the plate scale); its header says the angles' convention and the pointing.
    ``legacy`` (``l2-postprocess`` <= 1.3): ``derotation`` is read in hcdc's old clockwise sense,
    whatever ``ROTSENSE`` says."""
    from hcdc.instruments.registry import read_level1
    from hcdc.science.orientation import LEGACY_DEROTATION, derotation_angles, level1_convention

    try:
        product = read_level1(path)
    except ValueError as exc:
        raise RecipeInputError(f"Level 1 product {path}: {exc}") from exc
    header = product.header
    if params.angle_convention:
        convention = _convention(params.angle_convention, legacy)
    elif legacy:
        convention = _convention(str(header.get("HIERARCH HCDC ANGCONV", "derotation")), legacy)
    else:
        convention = level1_convention(header) or LEGACY_DEROTATION  # no ANGCONV: written as hcdc's
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
        raise RecipeInputError(f"Level 1 product {path}: {exc}") from exc
    return {
        "cube": product.cube,
        "angles": angles,
        "orientation": orientation,
        "notes": [],
        "warnings": _old_sense_warnings(
            f"Level 1 product {Path(path).name}", convention, params.angle_convention, legacy
        ),
        "psf": product.psf,
        "wavelengths": product.wavelengths_um,
        "pixel_scale_mas": params.pixel_scale_mas or product.pixel_scale_mas,
        "conditions": product.conditions,
        "unit": product.unit,
        "input_names": {Path(path).name: _prov.sha256_path(path)},
    }


def _read_user_files(inputs: dict[str, Any]) -> dict[str, Any]:
    """The user's files (cube memory-mapped), checked against each other; errors name the file."""
    import numpy as np

    from hcdc.science.fits_inputs import read_angles, read_fits_array, read_vector

    cube_path = inputs["cube"]
    cube, cube_header = read_fits_array(cube_path, "cube", ndims=(3, 4))
    angles, angles_header = read_angles(inputs["angles"])
    psf = read_fits_array(inputs["psf"], "PSF", ndims=(2, 3, 4))[0] if "psf" in inputs else None
    if psf is not None and psf.ndim == 4:  # hcdc Level 1 psf_cube: (wavelengths, frames, y, x)
        psf = np.asarray(psf, dtype=np.float64).mean(axis=1)
    wavelengths = read_vector(inputs["wavelengths"], "wavelengths") if "wavelengths" in inputs else None
    reference = (
        read_fits_array(inputs["reference"], "reference", ndims=(3, 4))[0] if "reference" in inputs else None
    )
    n_frames = cube.shape[-3]
    if angles.size != n_frames:
        raise RecipeInputError(
            f"angles file {inputs['angles']}: {angles.size} angles for the {n_frames} frames "
            f"of cube {cube_path}"
        )
    if wavelengths is not None and (cube.ndim != 4 or wavelengths.size != cube.shape[0]):
        planes = cube.shape[0] if cube.ndim == 4 else "no"
        raise RecipeInputError(
            f"wavelengths file {inputs['wavelengths']}: {wavelengths.size} values for {planes} "
            f"wavelength planes of cube {cube_path} (shape {cube.shape})"
        )
    if psf is not None and psf.ndim == 3 and (cube.ndim != 4 or psf.shape[0] != cube.shape[0]):
        raise RecipeInputError(
            f"PSF file {inputs['psf']}: {psf.shape[0]} PSF planes do not match cube {cube_path} "
            f"of shape {cube.shape}"
        )
    if reference is not None and reference.shape[-2:] != cube.shape[-2:]:
        raise RecipeInputError(
            f"reference file {inputs['reference']}: frame size {reference.shape[-2:]} differs from "
            f"cube {cube_path} frame size {cube.shape[-2:]}"
        )
    return {
        "cube": cube,
        "cube_header": cube_header,
        "angles": angles,
        "angles_header": angles_header,
        "psf": psf,
        "wavelengths": wavelengths,
        "reference": reference,
    }


def _user_cube_inputs(
    inputs: dict[str, Any], params: PostprocessParameters, legacy: bool = False
) -> dict[str, Any]:
    """A user's cube and angles (parallactic unless the parameters or the files' headers declare
    otherwise), optional PSF, wavelengths and reference cube; the plate scale from the parameters
    or the cube's ``PIXSCALE`` / ``HIERARCH HCDC PIXSCALE`` (none: results in pixels only); the
    star position checked (and fixed with ``recenter``) when the FWHM is known."""
    from hcdc.science.calibration.recenter import check_cube_star
    from hcdc.science.fits_inputs import InputError, declared_convention, header_float
    from hcdc.science.orientation import derotation_angles
    from hcdc.science.postprocessing.run import estimate_fwhm
    from hcdc.science.postprocessing.sanity import check_positive

    if "angles" not in inputs:
        raise RecipeInputError(
            "a user cube needs its angles (input 'angles', parallactic unless angle_convention says)"
        )
    try:
        files = _read_user_files(inputs)
    except InputError as exc:
        raise RecipeInputError(str(exc)) from exc
    cube, header = files["cube"], files["cube_header"]
    try:
        scale = params.pixel_scale_mas
        for key in ("PIXSCALE", "HIERARCH HCDC PIXSCALE"):  # the latter: hcdc Level 1
            if scale is None and key in header:
                scale = float(header[key])
                check_positive({f"{key} keyword of cube {inputs['cube']} (mas/px)": scale})
        declared, sky_aligned = declared_convention(files["angles_header"], header)
        pupil_offset, true_north = params.pupil_offset_deg, params.true_north_deg
        if sky_aligned and pupil_offset is None and true_north is None:
            pupil_offset = true_north = 0.0  # the angles already include both (hcdc Level 1)
        angles, orientation = derotation_angles(
            files["angles"],
            _convention(params.angle_convention or declared, legacy) or "parallactic",
            pupil_offset,
            true_north,
            params.transpose,
        )
        if orientation.known:
            ra, dec = params.ra_deg, params.dec_deg
            for key in ("RA", "HIERARCH HCDC RA"):
                ra = ra if ra is not None else header_float(header, key)
            for key in ("DEC", "HIERARCH HCDC DEC"):
                dec = dec if dec is not None else header_float(header, key)
            orientation = orientation.with_pointing(ra, dec)
        fwhm = params.fwhm
        psf = files["psf"]
        if fwhm is None and psf is not None:
            fwhm = estimate_fwhm(psf if psf.ndim == 2 else psf[0])
        notes: list[tuple[str, str]] = []
        if fwhm is not None:  # else postprocess() stops: it needs a FWHM or a PSF
            cube, notes = check_cube_star(
                cube, fwhm, f"cube {inputs['cube']}", params.recenter, params.center_method
            )
    except (ValueError, TypeError) as exc:
        raise RecipeInputError(str(exc)) from exc
    return {
        "cube": cube,
        "angles": angles,
        "orientation": orientation,
        "notes": [text for level, text in notes if level == "note"],
        "warnings": [text for level, text in notes if level == "warning"]
        + _old_sense_warnings(
            f"angles {Path(inputs['angles']).name}", declared, params.angle_convention, legacy
        ),
        "psf": psf,
        "wavelengths": files["wavelengths"],
        "reference": files["reference"],
        "pixel_scale_mas": scale,
        "unit": str(header.get("BUNIT", "")).strip(),
        # as given (the paths name the inputs in the product's header; provenance resolves them)
        "input_names": {str(p): _prov.sha256_path(p) for p in inputs.values()},
    }


@register_recipe
class PostprocessV15(Postprocess):
    """``l2-postprocess`` 1.5, kept so that its products rerun from their provenance bit for bit:
    photometry fakes at the detection's S/N times the noise (not at its flux estimate), the
    ``SPECRES`` cards' comments as astropy cut them."""

    version = "1.5"
    Parameters = PostprocessParametersV14
    null_threshold = True
    photometry_fakes_at_flux = False
    whole_card_comments = False


@register_recipe
class PostprocessV14(Postprocess):
    """``l2-postprocess`` 1.4, kept so that products made before 1.5 rerun from their provenance
    bit for bit (the standard workflows ran it until 1.6): detection and contrast at the Student
    threshold, photometry fakes at the detection's S/N."""

    version = "1.4"
    Parameters = PostprocessParametersV14
    null_threshold = False
    photometry_fakes_at_flux = False
    whole_card_comments = False


#: The ``l2-postprocess`` version the standard workflows (IRDIS, IFS, ZIMPOL, user cube) and ``hcdc
#: postprocess`` run: 1.6 (photometry fakes at the flux estimate, the Student threshold unless
#: ``calibrated_threshold``). 1.5's calibrated threshold was not made the default: on a 100-px
#: crop its tail fit raised the threshold 1.62x and lost a companion (docs/postprocessing.md).
WORKFLOW_VERSION = "1.6"


@register_recipe
class PostprocessV13(Postprocess):
    """``l2-postprocess`` 1.3, kept so that products made before 1.4 rerun from their provenance
    bit for bit: ``derotation`` angles (a parameter, an input's ``ANGCONV`` or a Level 1
    product's) are hcdc's old clockwise sense (:data:`hcdc.science.orientation.LEGACY_DEROTATION`),
    which turns real SPHERE frames the wrong way (docs/conventions.md, "Rotation sense")."""

    version = "1.3"
    Parameters = PostprocessParametersV13
    null_threshold = False
    photometry_fakes_at_flux = False
    whole_card_comments = False
    legacy_derotation = True
    fit_x_scale = None
    drop_spectral_residuals = False
    aperture_noise_errors = False


@register_recipe
class PostprocessV12(Postprocess):
    """``l2-postprocess`` 1.2, kept so that products made before 1.3 rerun from their provenance
    bit for bit: no ``frame_selection``, no ``FRSEL`` cards, no conditions nor field rotation in
    the summary; astrometric errors only for ADI/RDI algorithms with a PSF (none for spectral
    algorithms or without a PSF), no ASTERPSF card; a pixel empty in any channel is out of
    detection."""

    version = "1.2"
    Parameters = PostprocessParameters
    null_threshold = False
    photometry_fakes_at_flux = False
    whole_card_comments = False
    legacy_derotation = True
    fit_x_scale = None
    records_frames = False
    measures_astrometric_errors = "adi-psf"
    spectral_empty_majority = False
    drop_spectral_residuals = False
    aperture_noise_errors = False


@register_recipe
class PostprocessV11(Postprocess):
    """``l2-postprocess`` 1.1, kept so that Level 2 products made before 1.2 rerun from their
    provenance bit for bit: no ``detection_fpf`` (Gaussian 5 sigma) nor ``output_stem``
    (``level2_<algorithm>.fits``); a user cube is read as 1.1 read it
    (:func:`_user_cube_inputs_v11`). A Level 1 product is read as in 1.2, which gives 1.1's arrays
    for the IRDIS products, the only ones 1.1 read."""

    version = "1.1"
    Parameters = PostprocessParametersV11
    null_threshold = False
    photometry_fakes_at_flux = False
    whole_card_comments = False
    legacy_derotation = True
    fit_x_scale = None
    measures_astrometric_errors = False
    records_frames = False
    spectral_empty_majority = False
    drop_spectral_residuals = False
    aperture_noise_errors = False

    @staticmethod
    def _read_inputs(inputs: dict[str, Any], params: PostprocessParametersV11) -> dict[str, Any]:
        if ("level1" in inputs) == ("cube" in inputs):
            raise RecipeInputError("give either a Level 1 product (level1) or a user cube (cube + angles)")
        if "level1" in inputs:
            return _level1_inputs(inputs["level1"], params, legacy=True)
        return _user_cube_inputs_v11(inputs, params)


def _user_cube_inputs_v11(inputs: dict[str, Any], params: PostprocessParametersV11) -> dict[str, Any]:
    """A user cube as ``l2-postprocess`` 1.1 read it, frozen (1.2 reads the files' headers too):
    images cast to float32, angles parallactic unless ``angle_convention`` says (headers not
    consulted), pointing and offsets from the parameters only, the plate scale from the
    parameters or ``PIXSCALE``, inputs named by file name in the product."""
    import numpy as np

    from hcdc.science.calibration.recenter import check_cube_star
    from hcdc.science.fits_inputs import InputError, read_fits_array, read_vector
    from hcdc.science.orientation import derotation_angles
    from hcdc.science.postprocessing.run import estimate_fwhm

    def image(name: str, what: str, ndims: tuple[int, ...]) -> tuple[Any, Any]:
        data, header = read_fits_array(inputs[name], what, ndims, check_finite=False)
        return np.asarray(data, dtype=np.float32), header

    if "angles" not in inputs:
        raise RecipeInputError(
            "a user cube needs its angles (input 'angles', parallactic unless angle_convention says)"
        )
    try:
        cube, header = image("cube", "cube", (3, 4))
        angles = read_vector(inputs["angles"], "angles")
        psf = image("psf", "PSF", (2, 3))[0] if "psf" in inputs else None
        wavelengths = read_vector(inputs["wavelengths"], "wavelengths") if "wavelengths" in inputs else None
        reference = image("reference", "reference", (3, 4))[0] if "reference" in inputs else None
    except InputError as exc:
        raise RecipeInputError(str(exc)) from exc
    if angles.size != cube.shape[-3]:
        raise RecipeInputError(
            f"angles file {inputs['angles']}: {angles.size} angles for the {cube.shape[-3]} frames "
            f"of cube {inputs['cube']}"
        )
    try:
        angles, orientation = derotation_angles(
            angles,
            _convention(params.angle_convention, True) or "parallactic",
            params.pupil_offset_deg,
            params.true_north_deg,
            params.transpose,
        )
        if orientation.known:
            orientation = orientation.with_pointing(params.ra_deg, params.dec_deg)
    except ValueError as exc:
        raise RecipeInputError(f"angles file {inputs['angles']}: {exc}") from exc
    fwhm = params.fwhm
    if fwhm is None and psf is not None:
        fwhm = estimate_fwhm(psf if psf.ndim == 2 else psf[0])
    notes: list[tuple[str, str]] = []
    if fwhm is not None:
        try:
            cube, notes = check_cube_star(
                cube, fwhm, f"cube {inputs['cube']}", params.recenter, params.center_method
            )
        except ValueError as exc:
            raise RecipeInputError(str(exc)) from exc
    scale = params.pixel_scale_mas
    if scale is None and "PIXSCALE" in header:
        scale = float(header["PIXSCALE"])
    return {
        "cube": cube,
        "angles": angles,
        "orientation": orientation,
        "notes": [text for level, text in notes if level == "note"],
        "warnings": [text for level, text in notes if level == "warning"],
        "psf": psf,
        "wavelengths": wavelengths,
        "reference": reference,
        "pixel_scale_mas": scale,
        "unit": str(header.get("BUNIT", "")).strip(),
        "input_names": {Path(p).name: _prov.sha256_path(p) for p in inputs.values()},
    }


class PostprocessRdiParameters(PostprocessParametersV13):
    """Parameters of ``l2-rdi`` 1.0: ``l2-postprocess`` 1.3's, with a reference-star algorithm
    (default ``rdi``: per-frame best-correlated library frames, KLIP with ``ncomp`` modes)."""

    algorithm: str = Field("rdi", description="a registered Level 2 algorithm that takes a reference library")

    @field_validator("algorithm")
    @classmethod
    def _needs_reference(cls, name: str) -> str:
        spec = _known_algorithms().get(name)
        if spec is None or not spec.needs_reference:
            known = sorted(n for n, s in _known_algorithms().items() if s.needs_reference)
            raise ValueError(
                f"algorithm {name!r} does not take a reference library; use one of {', '.join(known)}"
            )
        return name


class PostprocessRdiParametersV11(PostprocessRdiParameters):
    """Parameters of ``l2-rdi`` 1.1: 1.0's; ``angle_convention`` as ``l2-postprocess`` 1.4's
    (``'derotation'`` in the vlt-sphere/VIP sense, ``'hcdc-clockwise'`` the old one)."""

    angle_convention: Literal["parallactic", "derotation", "hcdc-clockwise"] | None = (
        PostprocessParametersV14.model_fields["angle_convention"]
    )


@register_recipe
class PostprocessRdi(Postprocess):
    """``l2-rdi``: reference-star differential imaging of a Level 1 product with an RDI library
    built from the archive (:mod:`hcdc.archive.rdi_library`, ``hcdc rdi build``).

    Inputs: ``level1`` (the science product) and ``library`` (the library FITS: primary HDU the
    reference cube (wavelengths, frames, y, x) on the science grid, ``FRAMES`` table of where each
    frame comes from). Otherwise ``l2-postprocess`` 1.3 (frame selection, detections, contrast);
    the summary adds ``rdi_library`` (name, science product, frames, source products, the file's
    sha256), and the library file is an input of the provenance (its sha256)."""

    name = "l2-rdi"
    #: 1.1: as ``l2-postprocess`` 1.4 (Level 1 ``DEROT`` turned counter-clockwise where the product
    #: says ``ROTSENSE = 'CCW'``, Gaussian fits with ``x_scale=1.0``); 1.0 (kept) as 1.3
    version = "1.1"
    null_threshold = False  # the Student threshold, as l2-postprocess 1.4
    photometry_fakes_at_flux = False  # photometry fakes at the S/N, as l2-postprocess 1.4
    whole_card_comments = False
    description = "Level 1 cube + archive reference library -> Level 2 RDI image, S/N, contrast, detections"
    Parameters = PostprocessRdiParametersV11
    inputs = (
        Port("level1", DataKind.LEVEL1, "Level 1 product (the science sequence)"),
        Port("library", DataKind.PATH, "RDI reference library FITS (hcdc rdi build)"),
    )

    def _read_inputs(self, inputs: dict[str, Any], params: PostprocessParametersV11) -> dict[str, Any]:
        if "level1" not in inputs or "library" not in inputs:
            raise RecipeInputError(
                "l2-rdi needs a Level 1 product (level1) and a reference library (library)"
            )
        data = _level1_inputs(inputs["level1"], params, self.legacy_derotation)
        reference, info = _read_library(Path(inputs["library"]), data["cube"].shape)
        data["reference"] = reference
        data["input_names"][Path(inputs["library"]).name] = info["sha256"]
        data["notes"].append(
            f"RDI library {info['name']}: {info['frames']} frame(s) "
            f"from {len(info['source_products'])} product(s)"
        )
        return data

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        out = super().process(inputs, params, context)
        out["summary"]["rdi_library"] = _read_library(Path(inputs["library"]), None)[1]
        return out


@register_recipe
class PostprocessRdiV10(PostprocessRdi):
    """``l2-rdi`` 1.0, kept so that its products rerun from their provenance bit for bit: Level 1
    ``derotation`` angles in hcdc's old clockwise sense whatever ``ROTSENSE`` says, and scipy's
    default Gaussian-fit scaling (as ``l2-postprocess`` 1.3)."""

    version = "1.0"
    Parameters = PostprocessRdiParameters
    legacy_derotation = True
    fit_x_scale = None
    drop_spectral_residuals = False
    aperture_noise_errors = False


def _read_library(path: Path, cube_shape: tuple[int, ...] | None) -> tuple[Any, dict[str, Any]]:
    """The reference cube of a library FITS (memory-mapped) and what it says of itself; errors
    name the file and the reason (not a library, frame size or wavelengths differ from the cube)."""
    import numpy as np
    from astropy.io import fits

    from hcdc.science.fits_inputs import read_fits_array

    reference, header = read_fits_array(path, "RDI library", ndims=(3, 4))
    if str(header.get("HIERARCH HCDC PRODUCT", "")) != "RDI_LIBRARY":
        raise RecipeInputError(f"{path}: not an RDI library (HIERARCH HCDC PRODUCT is not RDI_LIBRARY)")
    if cube_shape is not None:
        n_wl = cube_shape[0] if len(cube_shape) == 4 else 1
        ref_wl = reference.shape[0] if reference.ndim == 4 else 1
        if reference.shape[-2:] != tuple(cube_shape[-2:]) or ref_wl != n_wl:
            raise RecipeInputError(
                f"{path}: library frames {reference.shape} do not match the science cube {tuple(cube_shape)} "
                "(same wavelengths and frame size needed)"
            )
    with fits.open(path, memmap=True) as hdul:
        table = hdul["FRAMES"].data if "FRAMES" in hdul else None
        products = sorted({int(p) for p in table["PRODUCT_ID"]}) if table is not None else []
        corr = np.asarray(table["CORRELATION"], dtype=float) if table is not None else np.empty(0)
    info = {
        "name": str(header.get("HIERARCH HCDC RDILIB", path.stem)),
        "science_product_id": header.get("HIERARCH HCDC RDISCI"),
        "frames": int(reference.shape[-3]),
        "source_products": products,
        "correlation_min": float(corr.min()) if corr.size else None,
        "correlation_max": float(corr.max()) if corr.size else None,
        "sha256": _prov.sha256_path(path),
    }
    return reference, info
