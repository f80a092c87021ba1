"""``irdis-masters``: one IRDIS calibration group of a night -> master frame + bad-pixel map.

The group is read and the files written by :mod:`hcdc.instruments.sphere.irdis.masters`; the
masters are those a Level 1 reduction builds (:func:`hcdc.instruments.sphere.irdis.raw.master_from_files`).
See :mod:`hcdc.pipeline.operations.calibrations` for the daily calibrations that queue it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from hcdc.instruments.sphere.irdis import masters as _masters
from hcdc.instruments.sphere.irdis.raw import dit_key, master_from_files
from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe
from hcdc.science.calibration import badpixels, flats

RECIPE_NAME = _masters.RECIPE_NAME
PRODUCT_TYPE = "master-calibration"


class IrdisMastersParameters(RecipeParameters):
    """Parameters of :class:`IrdisMasters` (those of the masters match :class:`Level1Options`)."""

    master_method: Literal["mean", "median"] = Field(
        "mean", description="combination of the DITs: sigma-clipped mean or median"
    )
    master_sigma: float = Field(5.0, gt=0, description="clipping threshold of the mean, robust sigma")
    hot_pixel_sigma: float = Field(
        5.0, gt=0, description="static bad pixels: departure from the local median, robust sigma"
    )
    hot_pixel_box: int = Field(5, ge=3, description="box of the local median for static bad pixels, px")
    flat_fit_sigma: float = Field(6.0, gt=0, description="non-linear pixels: relative fit residual, sigma")
    flat_gain_sigma: float = Field(6.0, gt=0, description="bad flat response: gain departure, robust sigma")
    memory_budget_mb: float = Field(256.0, gt=0, description="memory for the DIT stack, MB")


@register_recipe
class IrdisMasters(Recipe):
    """One IRDIS calibration group -> master frame + bad-pixel map (see the module docstring).

    ``raw``: the files of ONE group (same DPR TYPE, filter combination, and DIT for darks,
    backgrounds and skies). ``darks``: for a FLAT,LAMP group, DARK files at the flat DIT,
    combined and subtracted from every lamp flat (optional: the flat fit's intercept absorbs a
    constant offset, but the lamp levels are then biased by the dark level).
    """

    name = RECIPE_NAME
    product_level = 1  # a master set is a Level 1 calibration product
    product_type = PRODUCT_TYPE
    version = "1.0"
    description = "IRDIS calibration group of a night -> master dark/background/sky/flat + bad-pixel map"
    Parameters = IrdisMastersParameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "raw files of one calibration group"),
        Port("darks", DataKind.RAW_FILES, "DARK files at the flat DIT (FLAT,LAMP groups)", optional=True),
    )
    outputs = (
        Port("master", DataKind.PATH, "master FITS (ADU per DIT; flats dimensionless) with INPUTS table"),
        Port("badpixels", DataKind.PATH, "bad-pixel map FITS (uint8, 1 = bad): static or non-linear"),
        Port("summary", DataKind.VALUE, "kind, DPR TYPE, filter, DIT, files, DITs, bad pixels, levels"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        assert isinstance(params, IrdisMastersParameters)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with context.timer("read"):
            group = _read_group(list(inputs["raw"]), "raw")
        kind = _masters.CALIBRATION_TYPES[group.dpr_type]
        shape = group.files[0].shape
        dead = _masters.dead_zones(shape)
        context.log(
            f"{group.dpr_type} {group.filter} DIT {group.dit:g} s: {len(group.files)} file(s), "
            f"{sum(f.ndit for f in group.files)} DIT(s), frame {shape}"
        )
        tables = [_masters.inputs_table(group.files, group.dpr_type)]
        if group.dpr_type in _masters.DARK_LIKE:
            if "darks" in inputs:
                raise RecipeInputError(f"input 'darks' is only for FLAT,LAMP groups, not {group.dpr_type}")
            with context.timer("master"):
                master = _master(group.files, params)
                bad = badpixels.hot_pixels(
                    master, sigma=params.hot_pixel_sigma, box=params.hot_pixel_box, exclude=dead
                )
            unit, map_kind = "ADU", "static"
            stats = {"median_adu": float(np.median(master[~dead]))}
        else:
            with context.timer("master"):
                master, bad, stats, dark_files = self._flat(group, inputs.get("darks"), params, dead)
            if dark_files:
                tables.append(_masters.inputs_table(dark_files, "DARK"))
            unit, map_kind = "", "non-linear"
        context.progress("masters", 1, 1)
        stem = f"{kind}_{group.filter}" + (
            f"_DIT{group.dit:.2f}" if group.dpr_type in _masters.DARK_LIKE else ""
        )
        with context.timer("write"):
            header = _masters.master_header(
                group, kind, self.version, params.model_dump(mode="json"), started
            )
            master_path = _masters.write_image(
                context.output_path(f"{stem}.fits"), master.astype(np.float32), header, unit, tables
            )
            map_header = _masters.master_header(
                group, f"badpixel-map-{map_kind}", self.version, params.model_dump(mode="json"), started
            )
            map_header["HIERARCH HCDC BPM KIND"] = (map_kind, "static (darks) or non-linear (flats)")
            map_header["HIERARCH HCDC NBAD"] = (int(bad.sum()), "pixels flagged (dead zones excluded)")
            map_path = _masters.write_image(
                context.output_path(f"badpixels_{stem}.fits"), bad.astype(np.uint8), map_header, "", tables
            )
        context.log(f"{kind}: {int(bad.sum())} {map_kind} bad pixel(s)")
        summary = {
            "product_type": kind,
            "badpixel_map": map_kind,
            "dpr_type": group.dpr_type,
            "filter": group.filter,
            "dit_s": group.dit,
            "files": len(group.files),
            "ndit": sum(f.ndit for f in group.files),
            "shape": list(shape),
            "bad_pixels": int(bad.sum()),
            **stats,
        }
        return {"master": master_path, "badpixels": map_path, "summary": summary}

    @staticmethod
    def _flat(
        group: _masters.MasterGroup,
        dark_paths: Sequence[Path] | None,
        params: IrdisMastersParameters,
        dead: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[Any]]:
        """Master flat and non-linear map of a FLAT,LAMP group (darks subtracted when given)."""
        if len(group.files) < 2:
            raise RecipeInputError(
                f"{group.files[0].path}: a flat needs at least 2 lamp flats of different flux, got 1"
            )
        dark_files: list[Any] = []
        dark = None
        if dark_paths:
            darks = _read_group(list(dark_paths), "darks")
            if darks.dpr_type != "DARK":
                raise RecipeInputError(f"input 'darks' holds {darks.dpr_type} files, not DARK")
            if dit_key(darks.dit) not in {dit_key(f.dit) for f in group.files}:
                raise RecipeInputError(f"darks have DIT {darks.dit:g} s, not the flats' DIT")
            if darks.files[0].shape != group.files[0].shape:
                raise RecipeInputError("darks and flats have different detector shapes")
            dark_files = darks.files
            dark = _master(dark_files, params)
        frames = np.array([f.mean() - dark if dark is not None else f.mean() for f in group.files])
        try:
            result = flats.fit_flat(
                frames,
                n_fields=2,
                valid=~dead,
                fit_sigma=params.flat_fit_sigma,
                gain_sigma=params.flat_gain_sigma,
            )
        except ValueError as exc:
            raise RecipeInputError(
                f"flat fit of {', '.join(f.path.name for f in group.files)} failed: {exc}"
            ) from exc
        stats = {
            "lamp_levels_adu": [float(v) for v in result.levels],
            "dark_subtracted": dark is not None,
        }
        return result.flat, result.bad, stats, dark_files


def _read_group(paths: Sequence[Path], what: str) -> _masters.MasterGroup:
    """The group's files (:func:`hcdc.instruments.sphere.irdis.masters.read_group`); a bad group is
    a recipe input error."""
    try:
        return _masters.read_group(paths, what)
    except _masters.MastersInputError as exc:
        raise RecipeInputError(str(exc)) from exc


def _master(files: Sequence[Any], params: IrdisMastersParameters) -> np.ndarray:
    """The master of ``files`` as the Level 1 reduction builds it (same function and options)."""
    return master_from_files(files, params.master_method, params.master_sigma, params.memory_budget_mb)
