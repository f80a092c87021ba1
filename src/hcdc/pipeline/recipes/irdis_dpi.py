"""``irdis-dpi``: the Level 1 product of an IRDIS DPI sequence + its raw files -> Stokes and
polarisation maps (Level 2), by :func:`hcdc.instruments.sphere.irdis.dpi_reduction.reduce_dpi`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from hcdc.instruments.sphere.irdis import dpi_reduction as _dpi
from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe

_DEFAULTS = _dpi.DPIOptions()


class IrdisDpiParameters(RecipeParameters):
    """Parameters of :func:`~hcdc.instruments.sphere.irdis.dpi_reduction.reduce_dpi` (one per field of
    ``DPIOptions``, same names and defaults)."""

    method: Literal["double_difference", "double_ratio"] = Field(
        _DEFAULTS.method, description="Stokes Q/U from the beams: double difference or double ratio"
    )
    ip_annulus_px: tuple[float, float] | None = Field(
        _DEFAULTS.ip_annulus_px,
        description="annulus (inner, outer) px where the instrumental polarisation is measured; null: none",
    )
    combine: Literal["mean", "median"] = Field(_DEFAULTS.combine, description="combination of the HWP cycles")
    previews: bool = Field(_DEFAULTS.previews, description="write PNG previews of Qphi, Uphi, PI and I")
    instrument_model: bool = Field(
        _DEFAULTS.instrument_model,
        description=(
            "model-based correction with the Mueller-matrix model of telescope, HWP, derotator and "
            "polarisers (van Holstein et al. 2020); false: the ideal-instrument reduction of 1.0"
        ),
    )

    @field_validator("ip_annulus_px")
    @classmethod
    def _ordered_annulus(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"annulus must be 0 <= inner < outer (px), got {value}")
        return value


@register_recipe
class IrdisDpi(Recipe):
    """IRDIS DPI Level 1 product + raw files -> Level 2 Stokes I, Q, U, Qphi, Uphi, PI, DoLP, AoLP
    (see :mod:`hcdc.instruments.sphere.irdis.dpi_reduction`). The raw files give each OBJECT
    file's half-wave-plate position (``OCS DPI H2RT STOKES``, checked against ``INS4 DROT3``)."""

    name = "irdis-dpi"
    # 1.1: model-based correction (Mueller-matrix model; Stokes incident on the telescope, images
    # derotated in IRDAP's sense, pupil and field tracking). 1.0: ideal instrument (below).
    version = "1.1"
    product_level = 2
    product_type = "level2-polarimetry"
    description = (
        "IRDIS DPI Level 1 beams -> Stokes, Qphi/Uphi, PI, DoLP, AoLP maps (double difference/ratio)"
    )
    Parameters = IrdisDpiParameters
    inputs = (
        Port("level1", DataKind.LEVEL1, "Level 1 product of the DPI sequence (level1-irdis)"),
        Port(
            "raw", DataKind.RAW_FILES, "raw files of the sequence (the OBJECT files give the HWP positions)"
        ),
    )
    outputs = (
        Port("product", DataKind.LEVEL2, "Level 2 FITS product dpi_stokes.fits"),
        Port("summary", DataKind.VALUE, "HWP cycles, files dropped, measured instrumental polarisation"),
        Port("previews", DataKind.VALUE, "PNG previews {kind: path}", optional=True),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        assert isinstance(params, IrdisDpiParameters)
        options = _dpi.DPIOptions(**params.model_dump())
        out_dir = context.work_dir / "dpi"
        try:
            with context.timer("reduce"):
                path = _dpi.reduce_dpi(inputs["level1"], inputs["raw"], out_dir, options, context.progress)
        except _dpi.DPIError as exc:
            raise RecipeInputError(str(exc)) from exc
        product = _dpi.read_dpi_product(path)
        summary = _dpi.summary(product)
        context.log(
            f"{summary['cycles']} HWP cycle(s), {summary['dropped_files']} file(s) dropped, "
            f"IP q={summary['ip_q']} u={summary['ip_u']}"
        )
        previews = None
        if options.previews:
            previews = {p.stem.removeprefix("dpi_"): str(p) for p in sorted(out_dir.glob("dpi_*.png"))}
        return {"product": path, "summary": summary, "previews": previews}


class IrdisDpiV10Parameters(IrdisDpiParameters):
    """Parameters of ``irdis-dpi`` 1.0: no instrument model (the polarisation is assumed to turn
    with the image and the IP to be fixed in the detector frame)."""

    instrument_model: bool = Field(False, description="1.0 has no instrument model (always false)")

    @field_validator("instrument_model")
    @classmethod
    def _no_model(cls, value: bool) -> bool:
        if value:
            raise ValueError("irdis-dpi 1.0 has no instrument model; use version 1.1")
        return value


@register_recipe
class IrdisDpiV10(IrdisDpi):
    """``irdis-dpi`` 1.0 (kept for reproducibility): the ideal-instrument reduction (annulus IP in
    the detector frame, Stokes derotated with the image). Wrong on data with a real instrument's
    polarimetric behaviour (docs/polarimetry.md)."""

    version = "1.0"
    Parameters = IrdisDpiV10Parameters
