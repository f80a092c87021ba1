"""``astrometric-field``: one IRDIS astrometric calibration field + its reference list -> the
measured True North and plate scale
(:func:`hcdc.instruments.sphere.irdis.astrometric_field.measure_irdis_field`).

Queued by :mod:`hcdc.pipeline.operations.astrometry` on every ingested field file (file class
``ASTROMETRY``) whose pointing falls in a registered reference field; the product's summary is
the measurement, which the operation records in the True North / plate-scale series
(:func:`hcdc.archive.astrometry_monitor.record_field_product`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.irdis.astrometric_field import AstrometricFieldError, measure_irdis_field
from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe

RECIPE_NAME = "astrometric-field"
PRODUCT_TYPE = "astrometric-calibration"


class AstrometricFieldParameters(RecipeParameters):
    """Parameters of :class:`AstrometricField` (those of ``hcdc monitor astrometry measure``)."""

    channel: Literal["left", "right"] = Field("left", description="IRDIS field of a 2048x1024 frame")
    anamorphism: bool = Field(True, description="correct the IRDIS anamorphism before fitting")
    nsigma: float = Field(8.0, gt=0, description="detection threshold, robust sigmas")
    min_stars: int = Field(6, ge=3, description="fewest matched stars to accept a fit")
    bootstrap: int = Field(300, ge=0, description="bootstrap resamplings of the matched stars")


@register_recipe
class AstrometricField(Recipe):
    """One astrometric field file (``raw``: exactly one) measured against ``reference`` (CSV)."""

    name = RECIPE_NAME
    product_level = 1
    product_type = PRODUCT_TYPE
    version = "1.0"
    description = "IRDIS astrometric calibration field + reference list -> True North and plate scale"
    Parameters = AstrometricFieldParameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "one astrometric field file (DPR TYPE OBJECT,ASTROMETRY)"),
        Port("reference", DataKind.PATH, "reference list CSV: ra_deg, dec_deg (ICRS, at the epoch), id"),
    )
    outputs = (
        Port("measurement", DataKind.PATH, "JSON: the measurement with every matched star"),
        Port("summary", DataKind.VALUE, "True North, plate scale, errors, epoch, filter, fit"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        assert isinstance(params, AstrometricFieldParameters)
        field_file = _single_field(inputs)
        reference = Path(str(inputs["reference"]))
        with context.timer("measure"):
            try:
                result = measure_irdis_field(
                    field_file,
                    reference,
                    channel=params.channel,
                    anamorphism_xy=sc.IRDIS_ANAMORPHISM_XY if params.anamorphism else None,
                    nsigma=params.nsigma,
                    min_stars=params.min_stars,
                    bootstrap=params.bootstrap,
                )
            except AstrometricFieldError as exc:
                raise RecipeInputError(str(exc)) from exc
        fit = result["fit"]
        context.log(
            f"{field_file.name}: True North {result['true_north_deg']:+.4f} ± "
            f"{result['true_north_err_deg']:.4f} deg, "
            f"plate scale {result['plate_scale_mas']:.4f} ± {result['plate_scale_err_mas']:.4f} mas/px "
            f"({fit['used']} of {fit['matched']} matched stars)"
        )
        return _measurement_outputs(result, context)


IFS_RECIPE_NAME = "ifs-astrometric-field"


class IfsAstrometricFieldParameters(RecipeParameters):
    """Parameters of :class:`IfsAstrometricField` (no channel, no anamorphism: the IFS Level 1
    grid is corrected already)."""

    nsigma: float = Field(8.0, gt=0, description="detection threshold, robust sigmas")
    min_stars: int = Field(6, ge=3, description="fewest matched stars to accept a fit")
    bootstrap: int = Field(300, ge=0, description="bootstrap resamplings of the matched stars")


@register_recipe
class IfsAstrometricField(Recipe):
    """One IFS astrometric field image on the Level 1 grid (``raw``: exactly one; module doc of
    :mod:`hcdc.instruments.sphere.ifs.astrometric_field`) measured against ``reference``."""

    name = IFS_RECIPE_NAME
    product_level = 1
    product_type = PRODUCT_TYPE
    version = "1.0"
    description = "IFS astrometric field (Level 1 grid) + reference list -> True North and plate scale"
    Parameters = IfsAstrometricFieldParameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "one IFS field image on the Level 1 grid (channels collapsed)"),
        Port("reference", DataKind.PATH, "reference list CSV: ra_deg, dec_deg (ICRS, at the epoch), id"),
    )
    outputs = AstrometricField.outputs

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.instruments.sphere.ifs.astrometric_field import measure_ifs_field

        assert isinstance(params, IfsAstrometricFieldParameters)
        field_file = _single_field(inputs)
        with context.timer("measure"):
            try:
                result = measure_ifs_field(
                    field_file,
                    Path(str(inputs["reference"])),
                    nsigma=params.nsigma,
                    min_stars=params.min_stars,
                    bootstrap=params.bootstrap,
                )
            except AstrometricFieldError as exc:
                raise RecipeInputError(str(exc)) from exc
        fit = result["fit"]
        context.log(
            f"{field_file.name} (IFS): True North {result['true_north_deg']:+.4f} ± "
            f"{result['true_north_err_deg']:.4f} deg (instrument offset "
            f"{result['instrument_offset_deg']:+.2f} deg assumed), plate scale "
            f"{result['plate_scale_mas']:.4f} ± {result['plate_scale_err_mas']:.4f} mas/px "
            f"({fit['used']} of {fit['matched']} matched stars)"
        )
        return _measurement_outputs(result, context)


def _single_field(inputs: dict[str, Any]) -> Path:
    """The one field file of ``inputs['raw']`` (a field is measured one file at a time)."""
    raw = [Path(str(getattr(item, "path", item))) for item in inputs["raw"]]
    if len(raw) != 1:
        raise RecipeInputError(f"an astrometric field is measured one file at a time; got {len(raw)}")
    return raw[0]


def _measurement_outputs(result: dict[str, Any], context: RecipeContext) -> dict[str, Any]:
    """The recipe's outputs: the whole measurement as JSON, the summary without the star list."""
    path = context.output_path("astrometric_measurement.json")
    path.write_text(json.dumps(result, indent=1, default=str))
    summary = {k: v for k, v in result.items() if k != "stars"}
    summary["product_type"] = PRODUCT_TYPE
    return {"measurement": path, "summary": summary}
