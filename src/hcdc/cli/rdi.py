"""RDI reference libraries: ``hcdc rdi build PRODUCT`` (a library of other targets' Level 1
frames of the same set-up, ranked by correlation with the science frames), ``hcdc rdi list``,
``hcdc rdi show LIBRARY`` and ``hcdc rdi reduce LIBRARY`` (the ``l2-rdi`` recipe).

Thin: the archive decides and builds (:mod:`hcdc.archive.rdi_library` through the catalogue
facade's :attr:`~hcdc.archive.catalogue.UserCatalogue.rdi`, rule R18 of :mod:`hcdc.archive.access`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, fail
from hcdc.cli.output import console, emit_json, print_table

rdi_app = typer.Typer(help="Reference-star libraries for RDI, built from the archive.", no_args_is_help=True)

AS_OPTION = typer.Option(
    None, "--as", help="Act as this account (only products it may see are used); default: the local operator."
)


def _product_id(text: str) -> int:
    from hcdc.cli.common import parse_object_id

    kind, number = parse_object_id(text if text.strip()[:1].isalpha() else f"p{text.strip()}")
    if kind != "product":
        fail(f"{text!r} is a {kind} id; give a Level 1 product (p12 or 12)")
    return number


def _library_ref(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text.strip()


def _catalogue(root: Path | None, as_user: str | None) -> Any:
    from hcdc.archive.catalogue import NotFound
    from hcdc.cli.common import viewing

    return viewing(root, as_user, refusals=(NotFound, ValueError, LookupError))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@rdi_app.command("build")
def build_command(
    product: str = typer.Argument(..., help="Science Level 1 product id (p12 or 12)."),
    name: str | None = typer.Option(None, "--name", help="Library name (default rdi-p<id>-<time>)."),
    max_frames: int = typer.Option(200, "--max-frames", min=1, help="Frames kept, best correlated first."),
    dit_factor: float = typer.Option(2.0, "--dit-factor", min=1.0, help="Reference DIT within DIT/f..DIT*f."),
    strehl_min: float | None = typer.Option(None, "--strehl-min", help="Keep frames with Strehl >= this."),
    seeing_max: float | None = typer.Option(
        None, "--seeing-max", help="Keep frames with seeing <= this (arcsec)."
    ),
    tau0_min_ms: float | None = typer.Option(
        None, "--tau0-min-ms", help="Keep frames with tau0 >= this (ms)."
    ),
    annulus: tuple[float, float] | None = typer.Option(
        None, "--annulus", help="Correlation annulus inner outer radius, px (default 2-8 lambda/D)."
    ),
    conditions_weight: float = typer.Option(
        0.0,
        "--conditions-weight",
        min=0.0,
        help="Prefer frames of similar conditions: rank by correlation - W * distance (0: off).",
    ),
    conditions_quantities: str = typer.Option(
        "SEEING,TAU0,STREHL,WIND,AIRMASS",
        "--conditions-quantities",
        help="CONDITIONS columns the distance compares, comma-separated "
        "(SEEING,TAU0,STREHL: the distance before wind and airmass).",
    ),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Build a reference library for a science Level 1 product from other targets' Level 1 products
    of the same set-up (filter, coronagraph, DIT range) that the account may see."""
    from hcdc.archive.rdi_library import LibrarySettings

    try:
        settings = LibrarySettings(
            max_frames=max_frames,
            dit_factor=dit_factor,
            strehl_min=strehl_min,
            seeing_max_arcsec=seeing_max,
            tau0_min_s=None if tau0_min_ms is None else tau0_min_ms / 1e3,
            annulus_px=annulus,
            conditions_weight=conditions_weight,
            conditions_quantities=tuple(q.strip() for q in conditions_quantities.split(",") if q.strip()),
        )
    except ValueError as exc:
        fail(str(exc))
    product_id = _product_id(product)
    with _catalogue(root, as_user) as (_, cat):
        lib = cat.rdi.build(product_id, name=name, settings=settings)
    if json_out:
        emit_json(lib)
        return
    _print_library(lib, frames=10)


@rdi_app.command("list")
def list_command(
    product: str | None = typer.Option(None, "--product", help="Only the libraries of this science product."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """The RDI libraries the account may see, newest first."""
    with _catalogue(root, as_user) as (_, cat):
        rows = cat.rdi.list(None if product is None else _product_id(product))
    if json_out:
        emit_json(rows)
        return
    print_table(
        "RDI libraries",
        ["id", "name", "science", "target", "filter", "coronagraph", "frames", "built by", "created"],
        [
            {
                "id": r["id"],
                "name": r["name"],
                "science": f"p{r['science_product_id']}",
                "target": r["target"] or "",
                "filter": r["filter"] or "",
                "coronagraph": r["coronagraph"] or "",
                "frames": r["n_frames"],
                "built by": r["built_by"],
                "created": r["created_at"],
            }
            for r in rows
        ],
    )


@rdi_app.command("show")
def show_command(
    library: str = typer.Argument(..., help="Library id or name."),
    frames: int = typer.Option(20, "--frames", min=0, help="Frames listed (text output)."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """A library: set-up, selection, provenance and its frames with their correlation."""
    with _catalogue(root, as_user) as (_, cat):
        lib = cat.rdi.show(_library_ref(library))
    if json_out:
        emit_json(lib)
        return
    _print_library(lib, frames=frames)


@rdi_app.command("reduce")
def reduce_command(
    library: str = typer.Argument(..., help="Library id or name."),
    out: Path = typer.Option(..., "--out", help="Output folder of the Level 2 product."),
    ncomp: int = typer.Option(10, "--ncomp", min=1, help="KLIP modes."),
    n_keep: int | None = typer.Option(None, "--n-keep", min=1, help="Library frames kept per science frame."),
    contrast: bool = typer.Option(False, "--contrast/--no-contrast", help="Also the contrast curve (slow)."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Run ``l2-rdi`` on the library's science product with the library (not registered in the
    catalogue: queue it with the pipeline for that)."""
    import json

    from hcdc.pipeline.registry import run_recipe

    with _catalogue(root, as_user) as (_, cat):
        path, _ = cat.rdi.file(_library_ref(library))
        level1 = cat.rdi.science_folder(_library_ref(library))
    params = [f"ncomp={ncomp}", f"compute_contrast={'true' if contrast else 'false'}"]
    if n_keep is not None:
        params.append(f"algorithm_params={json.dumps({'n_keep': n_keep})}")
    result = run_recipe("l2-rdi", {"level1": level1, "library": path}, params, work_dir=out)
    s = result.outputs["summary"]
    if json_out:
        emit_json({"product": str(result.outputs["product"]), "summary": s})
        return
    console.print(f"Level 2 RDI product {result.outputs['product']} ({len(s['detections'])} detection(s))")
    for d in s["detections"]:
        console.print(
            f"  sep {d.get('separation_mas', 0):.0f} mas  PA {d.get('pa_deg', 0):.1f} deg  S/N {d['snr']:.1f}"
        )


def _print_library(lib: dict[str, Any], frames: int) -> None:
    dit = lib["dit_range_s"]
    console.print(
        f"RDI library {lib['name']} (id {lib['id']}) for p{lib['science_product_id']} {lib['target'] or ''}: "
        f"{lib['instrument']} {lib['arm'] or ''} {lib['filter'] or ''} "
        f"coronagraph {lib['coronagraph'] or '-'}, DIT {_fmt(dit[0], 1)}-{_fmt(dit[1], 1)} s; "
        f"{lib['n_frames']} of {lib['n_candidates']} frame(s) kept, "
        f"annulus {lib['annulus_px'][0]:.1f}-{lib['annulus_px'][1]:.1f} px; built by {lib['built_by']} "
        f"{lib['created_at']}"
    )
    rows = lib.get("frames", [])[:frames]
    if rows:
        print_table(
            "frames (best correlated first)",
            ["rank", "product", "target", "frame", "correlation", "Strehl", "seeing", "tau0 ms"],
            [
                {
                    "rank": f["rank"],
                    "product": f"p{f['product_id']}",
                    "target": f["target"] or "",
                    "frame": f["frame_index"],
                    "correlation": _fmt(f["correlation"], 4),
                    "Strehl": _fmt(f["strehl"], 2),
                    "seeing": _fmt(f["seeing_arcsec"], 2),
                    "tau0 ms": _fmt(None if f["tau0_s"] is None else f["tau0_s"] * 1e3, 1),
                }
                for f in rows
            ],
        )


def register(app: typer.Typer) -> None:
    app.add_typer(rdi_app, name="rdi")
