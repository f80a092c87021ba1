"""``simulate-irdis``: a night of raw IRDIS files (:mod:`hcdc.instruments.sphere.irdis.simulate`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe


class SimulateIrdisParameters(RecipeParameters):
    """Parameters of :func:`hcdc.instruments.sphere.irdis.simulate.simulate_irdis_night`."""

    seed: int = Field(0, ge=0, description="random seed (same seed, same files)")
    scale: Literal["small", "medium", "full"] = Field("small", description="detector size and DIT counts")
    night: str = Field("2018-11-30", description="local evening date of the night, YYYY-MM-DD")
    modes: list[Literal["DBI", "CI"]] = Field(
        default_factory=lambda: ["DBI", "CI"], min_length=1, description="which default sequences to observe"
    )
    companions: list[tuple[float, float, float]] | None = Field(
        None, description="(separation mas, PA deg, contrast) of each companion; None: the default two"
    )
    ao_telemetry: bool = Field(False, description="also write SPARTA AO telemetry files (OBJECT,AO)")


@register_recipe
class SimulateIrdis(Recipe):
    """A night of raw IRDIS files with injected companions, by
    :func:`hcdc.instruments.sphere.irdis.simulate.simulate_irdis_night` (its truth in
    ``simulation_truth.json``)."""

    name = "simulate-irdis"
    version = "1.1"  # 1.1: companions turn with the sky in the physical (vlt-sphere/VIP) sense
    #: 1.0 placed companions in hcdc's old, opposite sense (docs/conventions.md, "Rotation sense")
    legacy_sky_sense = False
    product_level = 0
    product_type = "simulated-raw"
    description = (
        "simulate a night of raw SPHERE/IRDIS files with companions (hcdc.instruments.sphere.irdis.simulate)"
    )
    Parameters = SimulateIrdisParameters
    inputs = ()
    outputs = (
        Port("raw", DataKind.RAW_FILES, "the raw FITS files written, in time order"),
        Port("truth", DataKind.PATH, "simulation_truth.json: injected companions, centres, detector"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.instruments.sphere.irdis import simulate

        assert isinstance(params, SimulateIrdisParameters)
        sequences = [spec for spec in simulate.DEFAULT_SEQUENCES if spec.mode in params.modes]
        companions = None
        if params.companions is not None:
            companions = [simulate.Companion(sep, pa, contrast) for sep, pa, contrast in params.companions]
        with context.timer("simulate"):
            night = simulate.simulate_irdis_night(
                context.work_dir / "raw",
                seed=params.seed,
                scale=params.scale,
                companions=companions,
                sequences=sequences,
                night=params.night,
                ao_telemetry=params.ao_telemetry,
                legacy_sky_sense=self.legacy_sky_sense,
            )
        context.log(f"{len(night.files)} raw files written")
        raw = [f.path for f in night.files] + (night.ao_telemetry.files if night.ao_telemetry else [])
        return {"raw": sorted(raw), "truth": night.truth_json}


@register_recipe
class SimulateIrdisV10(SimulateIrdis):
    """``simulate-irdis`` 1.0, kept so that its raw files can be made again from their provenance: the
    companions turn on the detector in hcdc's old sense (counter-clockwise by DEROT), the opposite
    of the real IRDIS (docs/conventions.md, "Rotation sense")."""

    version = "1.0"
    legacy_sky_sense = True
