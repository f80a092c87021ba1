"""``simulate-ifs``: a night of raw IFS files (:mod:`hcdc.instruments.sphere.ifs.simulate`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe


class SimulateIfsParameters(RecipeParameters):
    """Parameters of :func:`hcdc.instruments.sphere.ifs.simulate.simulate_ifs_night`."""

    seed: int = Field(0, ge=0, description="random seed (same seed, same files)")
    mode: Literal["YJ", "YJH"] = Field("YJ", description="IFS mode (YJ = IRDIFS, YJH = IRDIFS_EXT)")
    scale: Literal["small", "medium", "full"] = Field("small", description="detector size and DIT counts")
    night: str = Field("2018-11-30", description="local evening date of the night, YYYY-MM-DD")


@register_recipe
class SimulateIfs(Recipe):
    """A night of raw IFS files with a flat-spectrum and a methane companion, by
    :func:`hcdc.instruments.sphere.ifs.simulate.simulate_ifs_night` (truth in
    ``simulation_truth.json`` / ``.fits``)."""

    name = "simulate-ifs"
    version = "1.0"
    product_level = 0
    product_type = "simulated-raw"
    description = (
        "simulate a night of raw SPHERE/IFS files with companions (hcdc.instruments.sphere.ifs.simulate)"
    )
    Parameters = SimulateIfsParameters
    inputs = ()
    outputs = (
        Port("raw", DataKind.RAW_FILES, "the raw FITS files written, in time order"),
        Port("truth", DataKind.PATH, "simulation_truth.json: companions and their spectra, geometry"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night

        assert isinstance(params, SimulateIfsParameters)
        with context.timer("simulate"):
            night = simulate_ifs_night(
                context.work_dir / "raw",
                mode=params.mode,
                seed=params.seed,
                scale=params.scale,
                night=params.night,
            )
        context.log(f"{len(night.files)} raw IFS files written")
        return {"raw": sorted(f.path for f in night.files), "truth": night.truth_json}
