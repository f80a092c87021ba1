"""Recipe ``oifits-fit``: homogeneous model fits of many OIFITS files at once (the survey case).

Reads every target of every file (:func:`hcdc.instruments.oifits_data.read_observables`), fits
one model to each with :mod:`hcdc.science.interferometry.fitting` (global grid, then local
refinement: no local minima from a bad start), inline or in a process pool, and writes one JSON
document with a row per (file, target): parameters, formal and scaled errors, χ², χ²_r, points,
or the reason a target could not be fitted. Loaded by the recipe registry (:mod:`hcdc.pipeline.registry`).
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hcdc.instruments.base import MetadataError
from hcdc.instruments.oifits_data import read_observables
from hcdc.instruments.oifits_granules import read_granules
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipe import Recipe, RecipeContext
from hcdc.pipeline.registry import register_recipe
from hcdc.science.interferometry.fitting import (
    BINARY_X_SCALE,
    FitError,
    FitResult,
    fit_binary,
    fit_diameter,
    fit_many,
)


class OifitsFitParameters(RecipeParameters):
    """Parameters of the ``oifits-fit`` recipe."""

    model: Literal["ud", "ld", "binary"] = Field(
        "ud", description="uniform disk, limb-darkened disk or binary"
    )
    ld_coefficient: float = Field(0.0, ge=0.0, le=1.0, description="linear limb-darkening coefficient (ld)")
    theta0_mas: float | None = Field(
        None, gt=0, description="starting diameter, mas (e.g. a JSDC UDD): search [θ0/2, 2θ0] instead of all"
    )
    max_sep_mas: float = Field(30.0, gt=0, description="binary: largest separation searched, mas")
    workers: int = Field(1, ge=1, description="processes fitting in parallel (1: inline)")


def _fitter(params: OifitsFitParameters, binary_x_scale: float | str = BINARY_X_SCALE):  # noqa: ANN202
    """The fit of ``params`` as a picklable callable (a process pool runs it)."""
    if params.model == "binary":
        return partial(fit_binary, max_sep_mas=params.max_sep_mas, x_scale=binary_x_scale)
    return partial(
        fit_diameter, model=params.model, ld_coefficient=params.ld_coefficient, theta0_mas=params.theta0_mas
    )


@register_recipe
class OifitsFit(Recipe):
    """Fit one model to every target of many OIFITS files (results in ``fits.json``)."""

    name = "oifits-fit"
    # 1.1: the binary refinement's variable scaling is fixed (BINARY_X_SCALE) instead of 'jac';
    # UD and LD fits are unchanged (no least squares)
    version = "1.1"
    #: ``least_squares``' ``x_scale`` of binary fits
    binary_x_scale: float | str = BINARY_X_SCALE
    description = "homogeneous UD / LD / binary fits of many OIFITS files (hcdc.science.interferometry)"
    Parameters = OifitsFitParameters
    # a model fit of calibrated data is a Level 3 (science) product, registered by the worker
    product_level = 3
    product_type = "oifits-model-fit"
    inputs = (Port("oifits", DataKind.RAW_FILES, "calibrated OIFITS files"),)
    outputs = (
        Port("fits", DataKind.PATH, "fits.json: one row per (file, target)"),
        Port(
            "summary", DataKind.VALUE, "model, files, targets fitted, targets not fitted, seconds of fitting"
        ),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        assert isinstance(params, OifitsFitParameters)
        rows: list[dict[str, Any]] = []
        datasets = []
        where: list[tuple[str, str]] = []
        with context.timer("read"):
            for path in (Path(str(p)) for p in inputs["oifits"]):
                try:
                    targets = sorted({g.target_name for g in read_granules(path)})
                    for target in targets:
                        datasets.append(read_observables(path, target))
                        where.append((str(path), target))
                except (MetadataError, OSError, KeyError, ValueError) as exc:
                    rows.append({"file": str(path), "target": None, "error": str(exc)})
                    context.log(f"{path.name}: not read ({exc})", "WARNING")
        fitter = _fitter(params, self.binary_x_scale)
        with context.timer("fit"):
            if params.workers > 1 and len(datasets) > 1:
                with ProcessPoolExecutor(params.workers) as pool:
                    results = fit_many(datasets, fitter, executor=pool)
            else:
                results = fit_many(datasets, fitter)
        fitted = 0
        for (file, target), result in zip(where, results, strict=True):
            if isinstance(result, FitResult):
                rows.append({"file": file, "target": target, **result.as_dict()})
                fitted += 1
            else:
                assert isinstance(result, FitError)
                rows.append({"file": file, "target": target, "error": str(result)})
        out = context.output_path("fits.json")
        out.write_text(json.dumps({"model": params.model, "results": rows}, indent=1))
        context.log(f"{fitted} of {len(rows)} targets fitted with model {params.model}")
        return {
            "fits": out,
            "summary": {
                "model": params.model,
                "files": len(inputs["oifits"]),
                "fitted": fitted,
                "not_fitted": len(rows) - fitted,
                "fit_seconds": round(sum(r.elapsed_s for r in results if isinstance(r, FitResult)), 3),
            },
        }


@register_recipe
class OifitsFitV10(OifitsFit):
    """``oifits-fit`` 1.0, kept so that fits made before 1.1 rerun from their provenance bit for
    bit: binary fits refine with ``x_scale='jac'`` (MINPACK's scaling by the Jacobian's column
    norms); UD and LD fits are those of 1.1."""

    version = "1.0"
    binary_x_scale = "jac"
