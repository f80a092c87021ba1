"""``level1-irdis``: IRDIS DBI/CI raw files -> Level 1 product
(:mod:`hcdc.instruments.sphere.irdis.level1`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from hcdc.instruments.sphere.irdis import frame_conditions as _conditions
from hcdc.instruments.sphere.irdis import level1 as _level1
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe

_L1_DEFAULTS = _level1.Level1Options()

#: Level 1 role inputs of the IRDIS recipe -> the DPR TYPE that :func:`reduce_irdis` expects
_IRDIS_ROLE_INPUTS = {
    "object": "OBJECT",
    "center": "OBJECT,CENTER",
    "flux": "OBJECT,FLUX",
    "sky": "SKY",
    "dark_background": "DARK,BACKGROUND",
    "dark": "DARK",
    "flat": "FLAT,LAMP",
}


class IrdisLevel1Parameters(RecipeParameters):
    """Parameters of :func:`hcdc.instruments.sphere.irdis.level1.reduce_irdis`: one per field of
    ``Level1Options``, same names and defaults (``tests/pipeline/test_recipes_builtin.py`` checks that
    none is lost)."""

    @field_validator("symmetry_annulus_ld")
    @classmethod
    def _ordered_annulus(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1]:
            raise ValueError(f"annulus must be 0 <= inner < outer (lambda/D), got {value}")
        return value

    science_dim: int = Field(_L1_DEFAULTS.science_dim, gt=0, description="science frame size, px")
    psf_dim: int = Field(_L1_DEFAULTS.psf_dim, gt=0, description="PSF (flux) frame size, px")
    master_method: Literal["mean", "median"] = Field(
        _L1_DEFAULTS.master_method, description="combination of calibration frames (mean is sigma-clipped)"
    )
    master_sigma: float = Field(_L1_DEFAULTS.master_sigma, gt=0, description="clipping threshold, sigma")
    hot_pixel_sigma: float = Field(
        _L1_DEFAULTS.hot_pixel_sigma, gt=0, description="hot-pixel threshold, sigma"
    )
    center_mode: Literal["interpolate", "nearest"] = Field(
        _L1_DEFAULTS.center_mode, description="star centre of OBJECT frames from the CENTER frames"
    )
    center_error_limit_px: float = Field(
        _L1_DEFAULTS.center_error_limit_px,
        gt=0,
        description="waffle centring error that triggers fallbacks, px",
    )
    anamorphism: bool = Field(_L1_DEFAULTS.anamorphism, description="correct the IRDIS anamorphism")
    shift_method: Literal["fourier", "spline"] = Field(
        _L1_DEFAULTS.shift_method, description="sub-pixel recentring method"
    )
    true_north_deg: float = Field(_L1_DEFAULTS.true_north_deg, description="true north correction, deg")
    pupil_offset_deg: float = Field(_L1_DEFAULTS.pupil_offset_deg, description="pupil offset, deg")
    symmetry_annulus_ld: tuple[float, float] = Field(
        _L1_DEFAULTS.symmetry_annulus_ld,
        description="annulus (inner, outer) of the point-symmetry centring fallback, lambda/D",
    )
    memory_budget_mb: float = Field(_L1_DEFAULTS.memory_budget_mb, gt=0, description="memory for masters, MB")


@register_recipe
class IrdisLevel1(Recipe):
    """IRDIS DBI/CI raw files -> Level 1 product, by
    :func:`hcdc.instruments.sphere.irdis.level1.reduce_irdis`.

    Raw files come either all together in ``raw`` (grouped by role from their DPR TYPE with
    :func:`hcdc.instruments.sphere.irdis.level1.roles_from_headers`) or per role; files given for a role
    replace the automatically grouped ones of that role.
    """

    name = "level1-irdis"
    version = "1.1"  # 1.1: per-frame AO conditions (CONDITIONS table of frames.fits)
    product_level = 1
    product_type = "level1-cube"
    description = (
        "IRDIS DBI/CI raw sequence -> calibrated Level 1 master cube (hcdc.instruments.sphere.irdis.level1)"
    )
    Parameters = IrdisLevel1Parameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations", optional=True),
        *(
            Port(name, DataKind.RAW_FILES, f"{role} raw files", optional=True)
            for name, role in _IRDIS_ROLE_INPUTS.items()
        ),
    )
    outputs = (
        Port(
            "product",
            DataKind.LEVEL1,
            "Level 1 product directory (read with hcdc.instruments.sphere.irdis.level1.read_level1)",
        ),
        Port("summary", DataKind.VALUE, "cube shape, wavelengths (um), number of frames, files per role"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        roles: dict[str, list[Path]] = {}
        if "raw" in inputs:
            roles.update(_level1.roles_from_headers(inputs["raw"]))
        for name, role in _IRDIS_ROLE_INPUTS.items():
            if name in inputs:
                roles[role] = list(inputs[name])
        context.log("files per role: " + ", ".join(f"{r}={len(f)}" for r, f in roles.items()))
        options = _level1.Level1Options(**params.model_dump())
        out_dir = context.work_dir / "level1"
        with context.timer("reduce"):
            _level1.reduce_irdis(roles, out_dir, options, context.progress)
        conditions_summary = self._conditions(inputs, out_dir, context)
        with context.timer("read_back"):
            product = _level1.read_level1(out_dir)
        summary = {
            "cube_shape": list(product.cube.shape),
            "wavelengths_um": [float(w) for w in product.wavelengths_um],
            "frames": int(product.cube.shape[1]),
            "psf_frames": int(product.psf_cube.shape[1]),
            "files_per_role": {role: len(files) for role, files in roles.items()},
            **conditions_summary,
        }
        return {"product": out_dir, "summary": summary}

    def _conditions(self, inputs: dict[str, Any], out_dir: Path, context: RecipeContext) -> dict[str, Any]:
        """Per-frame AO conditions from the SPARTA files among the raw inputs (1.1); the summary
        entries they add."""
        sparta = _conditions.telemetry_files(inputs.get("raw", []))
        with context.timer("conditions"):
            conditions = _conditions.add_conditions(out_dir, sparta)
        for problem in conditions.meta["problems"]:
            context.log(f"SPARTA file not used: {problem}", level="WARNING")
        covered = int((~conditions["NO_TELEMETRY"]).sum())
        context.log(
            f"AO conditions: {len(sparta)} SPARTA file(s), {covered}/{len(conditions)} frames with telemetry"
        )
        return {
            "ao_telemetry_files": len(sparta),
            "frames_with_ao_telemetry": covered,
            "ao_conditions": _conditions.conditions_summary(conditions),
        }


@register_recipe
class IrdisLevel1V10(IrdisLevel1):
    """``level1-irdis`` 1.0, kept so that products made before the per-frame conditions can be
    rerun from their provenance bit for bit: no ``CONDITIONS`` table, SPARTA inputs ignored."""

    version = "1.0"

    def _conditions(self, inputs: dict[str, Any], out_dir: Path, context: RecipeContext) -> dict[str, Any]:
        return {}
