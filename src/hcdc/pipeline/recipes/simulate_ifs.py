"""``simulate-ifs``: a night of raw IFS files (:mod:`hcdc.instruments.sphere.ifs.simulate`).

1.2 turns the companions with the sky in the physical sense (clockwise by ``DEROT`` on the
detector, as the real IFS; docs/conventions.md, "Rotation sense"); 1.1 draws the spectral
cross-talk (parameter ``crosstalk``, default on; docs/ifs.md); 1.0 (no cross-talk) and 1.1 (old
sense) stay registered so that their products rerun from their provenance.
"""

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


class SimulateIfsParametersV11(SimulateIfsParameters):
    """1.1: also the spectral cross-talk switch."""

    crosstalk: bool = Field(True, description="draw the spectral cross-talk (Mesa et al. 2015 model)")


@register_recipe
class SimulateIfs(Recipe):
    """A night of raw IFS files with a flat-spectrum and a methane companion, by
    :func:`hcdc.instruments.sphere.ifs.simulate.simulate_ifs_night` (truth in
    ``simulation_truth.json`` / ``.fits``)."""

    name = "simulate-ifs"
    version = "1.2"  # 1.2: companions turn with the sky in the physical (vlt-sphere/VIP) sense
    #: 1.0 and 1.1 placed companions in hcdc's old, opposite sense (docs/conventions.md, "Rotation sense")
    legacy_sky_sense = False
    product_level = 0
    product_type = "simulated-raw"
    description = (
        "simulate a night of raw SPHERE/IFS files with companions (hcdc.instruments.sphere.ifs.simulate)"
    )
    Parameters: type[SimulateIfsParameters] = SimulateIfsParametersV11
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
                crosstalk=bool(getattr(params, "crosstalk", False)),
                legacy_sky_sense=self.legacy_sky_sense,
            )
        context.log(f"{len(night.files)} raw IFS files written")
        return {"raw": sorted(f.path for f in night.files), "truth": night.truth_json}


@register_recipe
class SimulateIfsV11(SimulateIfs):
    """``simulate-ifs`` 1.1, kept so that its raw files can be made again from their provenance:
    spectral cross-talk, but the companions turn on the detector in hcdc's old sense
    (counter-clockwise by DEROT), the opposite of the real IFS (docs/conventions.md, "Rotation
    sense")."""

    version = "1.1"
    legacy_sky_sense = True


@register_recipe
class SimulateIfsV10(SimulateIfs):
    """``simulate-ifs`` 1.0: no spectral cross-talk, companions in hcdc's old sense (kept for reruns)."""

    version = "1.0"
    description = "simulate a night of raw SPHERE/IFS files with companions, without cross-talk"
    Parameters = SimulateIfsParameters
    legacy_sky_sense = True
