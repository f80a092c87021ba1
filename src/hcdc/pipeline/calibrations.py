"""Calibration workflows: master darks, backgrounds, skies, flats and bad-pixel maps for a night.

What the SPHERE Data Center does every evening: the calibration files of a night are grouped by
setup and each group is reduced into its master, independently of any science dataset.

* A **calibration group** is the current IRDIS files of one night sharing a ``DPR TYPE`` and a
  setup: ``DARK``, ``DARK,BACKGROUND`` and ``SKY`` per (DIT, filter combination); ``FLAT,LAMP``
  per filter combination (the lamp flats at increasing fluxes of one template). A flat group
  also takes the night's ``DARK`` files at the flat DIT, subtracted before the flat fit.
* The recipe ``irdis-masters`` (:class:`IrdisMasters`) reduces one group with the pure
  functions of :mod:`hcdc.science.calibration` (and the raw-file helpers of
  :mod:`hcdc.pipeline.level1`, so the masters are exactly those a Level 1 reduction builds):

  - DARK / DARK,BACKGROUND / SKY: sigma-clipped mean of every DIT of every file
    (:func:`hcdc.science.calibration.darks.master_frame`), in ADU per DIT, plus the **static
    bad-pixel map** (hot and cold pixels, :func:`hcdc.science.calibration.badpixels.hot_pixels`);
  - FLAT,LAMP: per-pixel linear fit of the dark-subtracted lamp flats against the lamp level
    (:func:`hcdc.science.calibration.flats.fit_flat`): the master flat (dimensionless, median 1
    per IRDIS field) and the **non-linear bad-pixel map**.

  The IRDIS dead zones (vignetted rows/columns, scaled to the frame size) are never flagged.
  Files are FITS with ``BUNIT``, the recipe/software provenance keywords and an ``INPUTS``
  table of the input files with their sha256.
* The standard workflow ``irdis-calibrations`` runs the recipe on one group (input ``raw``,
  optional ``darks``); its products are Level 1 products of type ``master-calibration``
  (the kind — ``master-dark``, ``master-background``, ``master-sky``, ``master-flat`` — is in
  the product summary; files have the roles ``master`` and ``badpixels``).
* :func:`calibration_groups` finds a night's groups in the catalogue; :func:`queue_calibrations`
  queues one job per group that has no job yet (a job on explicit inputs:
  :func:`hcdc.pipeline.jobs.queue_job` with ``inputs``); :func:`watch_calibrations_once` and
  :func:`calibration_hook` plug this into the folder watcher (daily calibrations).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from astropy.io import fits
from pydantic import Field
from sqlalchemy import select

import hcdc
from hcdc.archive import products as prod
from hcdc.archive.db import Catalogue
from hcdc.archive.models import File, utcnow
from hcdc.archive.pipeline_models import Job
from hcdc.archive.storage import resolve_stored_path
from hcdc.instruments import sphere_constants as sc
from hcdc.pipeline import jobs as jq
from hcdc.pipeline import level1 as _level1
from hcdc.pipeline.provenance import read_git_commit
from hcdc.pipeline.recipes import (
    DataKind,
    Port,
    Recipe,
    RecipeContext,
    RecipeInputError,
    RecipeParameters,
    register_recipe,
)
from hcdc.pipeline.workflows import Node, Workflow, register_workflow
from hcdc.science.calibration import background as bg
from hcdc.science.calibration import badpixels, flats
from hcdc.science.checksums import sha256_file

__all__ = [
    "CALIBRATION_TYPES",
    "CALIBRATION_WORKFLOW",
    "CalibrationGroup",
    "CalibrationPoll",
    "IrdisMasters",
    "IrdisMastersParameters",
    "calibration_groups",
    "calibration_hook",
    "queue_calibrations",
    "read_master",
    "watch_calibrations_once",
]

CALIBRATION_WORKFLOW = "irdis-calibrations"
RECIPE_NAME = "irdis-masters"
PRODUCT_TYPE = "master-calibration"

#: DPR TYPE of a calibration group -> the kind of master it gives
CALIBRATION_TYPES: dict[str, str] = {
    "DARK": "master-dark",
    "DARK,BACKGROUND": "master-background",
    "SKY": "master-sky",
    "FLAT,LAMP": "master-flat",
}
_DARK_LIKE = ("DARK", "DARK,BACKGROUND", "SKY")

# The catalogue's product registration decides (level, product type) from the recipe name
# (hcdc.archive.products.PRODUCT_KINDS): a master set is a Level 1 calibration product.
assert prod.PRODUCT_KINDS[RECIPE_NAME] == (1, PRODUCT_TYPE), "PRODUCT_KINDS and this recipe disagree"


# --------------------------------------------------------------------------------------------
# the recipe


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


@dataclass
class _Group:
    """The raw files of one group as the recipe reads them."""

    dpr_type: str
    files: list[Any]  # level1._RawFile
    filter: str
    dit: float


def _read_group(paths: Sequence[Path], what: str) -> _Group:
    """Open the raw files of one calibration group; they must share DPR TYPE and setup."""
    if not paths:
        raise RecipeInputError(f"no {what} files given")
    types: dict[str, list[Path]] = {}
    for path in paths:
        try:
            header = fits.getheader(path, 0)
        except (OSError, ValueError) as exc:
            raise RecipeInputError(f"{path}: not a readable FITS file ({exc})") from exc
        types.setdefault(str(header.get("HIERARCH ESO DPR TYPE", "")).strip(), []).append(Path(path))
    if len(types) != 1:
        detail = "; ".join(f"{t or '(none)'}: {', '.join(p.name for p in ps)}" for t, ps in types.items())
        raise RecipeInputError(f"{what} files mix DPR TYPEs ({detail}); give one calibration group")
    (dpr_type,) = types
    if dpr_type not in CALIBRATION_TYPES:
        raise RecipeInputError(
            f"{paths[0]}: DPR TYPE {dpr_type!r} is not a calibration this recipe reduces "
            f"({', '.join(CALIBRATION_TYPES)})"
        )
    try:
        files = [_level1._open_raw(p, dpr_type) for p in paths]
    except _level1.Level1Error as exc:
        raise RecipeInputError(str(exc)) from exc
    filters = {str(f.header.get("HIERARCH ESO INS COMB IFLT", "")).strip() for f in files}
    shapes = {f.shape for f in files}
    if len(shapes) != 1:
        raise RecipeInputError(f"{what} files have different detector shapes {sorted(shapes)}")
    dits = {_level1._dit_key(f.dit) for f in files}
    if dpr_type in _DARK_LIKE and len(dits) != 1:
        raise RecipeInputError(
            f"{what} files ({dpr_type}) have several DITs {sorted(dits)}: one master per DIT, one group each"
        )
    if len(filters) != 1:
        raise RecipeInputError(f"{what} files mix filter combinations {sorted(filters)}")
    return _Group(dpr_type, files, filters.pop(), float(files[0].dit))


def _inputs_table(files: Sequence[Any], role: str) -> fits.BinTableHDU:
    """The ``INPUTS`` extension: file name, role, DIT (s), NDIT and sha256 of every input."""
    columns = [
        fits.Column("FILE", "64A", array=[f.path.name for f in files]),
        fits.Column("ROLE", "16A", array=[role] * len(files)),
        fits.Column("DIT", "D", unit="s", array=[f.dit for f in files]),
        fits.Column("NDIT", "J", array=[f.ndit for f in files]),
        fits.Column("SHA256", "64A", array=[sha256_file(f.path) for f in files]),
    ]
    return fits.BinTableHDU.from_columns(columns, name="INPUTS")


def _header(group: _Group, product: str, params: IrdisMastersParameters, started: str) -> fits.Header:
    """Setup and provenance keywords of a master file (the full record is in provenance.json)."""
    first = group.files[0].header
    header = fits.Header()
    for key in ("INSTRUME", "DATE-OBS", "MJD-OBS"):
        if key in first:
            header[key] = first[key]
    for key in ("HIERARCH ESO SEQ ARM", "HIERARCH ESO INS COMB IFLT", "HIERARCH ESO DET READ CURNAME"):
        if key in first:
            header[key] = first[key]
    header["HIERARCH ESO DPR TYPE"] = group.dpr_type
    header["HIERARCH ESO DET SEQ1 DIT"] = (group.dit, "[s] DIT of the inputs")
    header["HIERARCH HCDC PRODUCT"] = product
    header["HIERARCH HCDC RECIPE"] = IrdisMasters.name
    header["HIERARCH HCDC RECIPE VERSION"] = IrdisMasters.version
    header["HIERARCH HCDC VERSION"] = hcdc.__version__
    header["HIERARCH HCDC GIT COMMIT"] = read_git_commit()
    header["HIERARCH HCDC START"] = started
    header["HIERARCH HCDC END"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    header["HIERARCH HCDC PARAMS"] = json.dumps(params.model_dump(mode="json"), sort_keys=True)
    header["HIERARCH HCDC NFILES"] = (len(group.files), "input files")
    header["HIERARCH HCDC NDIT"] = (sum(f.ndit for f in group.files), "DITs combined")
    return header


def _write_image(
    path: Path, data: np.ndarray, header: fits.Header, unit: str, inputs: Sequence[fits.BinTableHDU]
) -> Path:
    primary = fits.PrimaryHDU(data=data, header=header)
    primary.header["BUNIT"] = (unit, "physical unit of the data")
    fits.HDUList([primary, *inputs]).writeto(path, overwrite=True)
    return path


def _dead_zones(shape: tuple[int, int]) -> np.ndarray:
    """IRDIS vignetted rows/columns (True = dead), scaled to ``shape`` like the Level 1 reduction."""
    return bg.dead_zone_mask(
        shape, sc.IRDIS_DEAD_ROWS, sc.IRDIS_DEAD_COLUMNS, reference_shape=sc.IRDIS_RAW_SHAPE
    )


@register_recipe
class IrdisMasters(Recipe):
    """One IRDIS calibration group -> master frame + bad-pixel map (see the module docstring).

    ``raw``: the files of ONE group (same DPR TYPE, filter combination, and DIT for darks,
    backgrounds and skies). ``darks``: for a FLAT,LAMP group, DARK files at the flat DIT,
    combined and subtracted from every lamp flat (optional: the flat fit's intercept absorbs a
    constant offset, but the lamp levels are then biased by the dark level).
    """

    name = RECIPE_NAME
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
        kind = CALIBRATION_TYPES[group.dpr_type]
        shape = group.files[0].shape
        dead = _dead_zones(shape)
        opts = _level1.Level1Options(
            master_method=params.master_method,
            master_sigma=params.master_sigma,
            memory_budget_mb=params.memory_budget_mb,
        )
        context.log(
            f"{group.dpr_type} {group.filter} DIT {group.dit:g} s: {len(group.files)} file(s), "
            f"{sum(f.ndit for f in group.files)} DIT(s), frame {shape}"
        )
        tables = [_inputs_table(group.files, group.dpr_type)]
        if group.dpr_type in _DARK_LIKE:
            if "darks" in inputs:
                raise RecipeInputError(f"input 'darks' is only for FLAT,LAMP groups, not {group.dpr_type}")
            with context.timer("master"):
                master = _level1._master_from_files(group.files, opts)
                bad = badpixels.hot_pixels(
                    master, sigma=params.hot_pixel_sigma, box=params.hot_pixel_box, exclude=dead
                )
            unit, map_kind = "ADU", "static"
            stats = {"median_adu": float(np.median(master[~dead]))}
        else:
            with context.timer("master"):
                master, bad, stats, dark_files = self._flat(group, inputs.get("darks"), opts, params, dead)
            if dark_files:
                tables.append(_inputs_table(dark_files, "DARK"))
            unit, map_kind = "", "non-linear"
        context.progress("masters", 1, 1)
        stem = f"{kind}_{group.filter}" + (f"_DIT{group.dit:.2f}" if group.dpr_type in _DARK_LIKE else "")
        with context.timer("write"):
            header = _header(group, kind, params, started)
            master_path = _write_image(
                context.output_path(f"{stem}.fits"), master.astype(np.float32), header, unit, tables
            )
            map_header = _header(group, f"badpixel-map-{map_kind}", params, started)
            map_header["HIERARCH HCDC BPM KIND"] = (map_kind, "static (darks) or non-linear (flats)")
            map_header["HIERARCH HCDC NBAD"] = (int(bad.sum()), "pixels flagged (dead zones excluded)")
            map_path = _write_image(
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
        group: _Group,
        dark_paths: Sequence[Path] | None,
        opts: _level1.Level1Options,
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
            if _level1._dit_key(darks.dit) not in {_level1._dit_key(f.dit) for f in group.files}:
                raise RecipeInputError(f"darks have DIT {darks.dit:g} s, not the flats' DIT")
            if darks.files[0].shape != group.files[0].shape:
                raise RecipeInputError("darks and flats have different detector shapes")
            dark_files = darks.files
            dark = _level1._master_from_files(dark_files, opts)
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


def read_master(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """Data and header of a master or bad-pixel-map file written by :class:`IrdisMasters`."""
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            if hdul[0].header.get("HIERARCH HCDC RECIPE") != RECIPE_NAME:
                raise ValueError(f"{path}: not a product of recipe {RECIPE_NAME!r}")
            return np.array(hdul[0].data), hdul[0].header.copy()
    except OSError as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from exc


# --------------------------------------------------------------------------------------------
# the standard workflow


@register_workflow(CALIBRATION_WORKFLOW)
def _irdis_calibrations() -> Workflow:
    return Workflow(
        name=CALIBRATION_WORKFLOW,
        version="1.0",
        description="IRDIS calibration group of a night -> master dark/background/sky/flat + bad-pixel map",
        inputs=(
            Port("raw", DataKind.RAW_FILES, "raw files of one calibration group"),
            Port("darks", DataKind.RAW_FILES, "DARK files at the flat DIT (flats)", optional=True),
        ),
        nodes=(Node("masters", RECIPE_NAME, {"raw": "inputs.raw", "darks": "inputs.darks"}),),
        outputs={"master": "masters.master", "badpixels": "masters.badpixels", "summary": "masters.summary"},
    )


# --------------------------------------------------------------------------------------------
# finding and queueing a night's groups


@dataclass
class CalibrationGroup:
    """The current catalogued files of one calibration group of one night.

    ``key`` is ``night/DPR TYPE/filter[/DIT]``; ``files`` and ``darks`` are stored paths
    (``darks``: for a flat group, the night's DARK files at the flat DIT); ``newest`` is the
    latest ingest time of its files.
    """

    key: str
    night: dt.date | None
    dpr_type: str
    filter: str | None
    dit: float | None
    files: list[Path]
    file_ids: list[int]
    newest: dt.datetime
    darks: list[Path] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return CALIBRATION_TYPES[self.dpr_type]

    def job_inputs(self) -> dict[str, list[Path]]:
        inputs = {"raw": self.files}
        if self.darks:
            inputs["darks"] = self.darks
        return inputs


def _as_date(night: dt.date | str | None) -> dt.date | None:
    if night is None or isinstance(night, dt.date):
        return night
    try:
        return dt.date.fromisoformat(str(night))
    except ValueError as exc:
        raise ValueError(f"night {night!r} is not a date YYYY-MM-DD") from exc


def calibration_groups(catalogue: Catalogue, night: dt.date | str | None = None) -> list[CalibrationGroup]:
    """The IRDIS calibration groups of ``night`` (every night when None), sorted by key.

    Files: current SPHERE/IRDIS files whose DPR TYPE is DARK, DARK,BACKGROUND, SKY or
    FLAT,LAMP, grouped by (night, DPR TYPE, filter combination, DIT to 0.01 s); lamp flats are
    grouped without their DIT, and get the night's DARK files at their DIT (same filter
    combination preferred).
    """
    wanted = _as_date(night)
    query = select(
        File.id,
        File.type,
        File.filter,
        File.dit,
        File.night,
        File.storage,
        File.stored_path,
        File.ingested_at,
    ).where(
        File.is_current,
        File.instrument == "SPHERE",
        File.arm == "IRDIS",
        File.type.in_(list(CALIBRATION_TYPES)),
    )
    if wanted is not None:
        query = query.where(File.night == wanted)
    with catalogue.engine.connect() as conn:
        rows = conn.execute(query.order_by(File.id)).all()
    groups: dict[tuple, CalibrationGroup] = {}
    darks_by_dit: dict[tuple, list[Any]] = {}
    flat_dits: dict[tuple, set[float]] = {}
    for row in rows:
        dpr_type = row.type.strip()
        dit = None if row.dit is None else _level1._dit_key(row.dit)
        setup = (row.night, dpr_type, row.filter, None if dpr_type == "FLAT,LAMP" else dit)
        path = resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root)
        if dpr_type == "DARK":
            darks_by_dit.setdefault((row.night, dit), []).append((row, path))
        group = groups.get(setup)
        if group is None:
            parts = [str(row.night), dpr_type, row.filter or "-"]
            if setup[3] is not None:
                parts.append(f"DIT{setup[3]:.2f}")
            group = groups[setup] = CalibrationGroup(
                "/".join(parts), row.night, dpr_type, row.filter, setup[3], [], [], row.ingested_at
            )
        group.files.append(path)
        group.file_ids.append(row.id)
        group.newest = max(group.newest, row.ingested_at)
        if dpr_type == "FLAT,LAMP" and dit is not None:
            flat_dits.setdefault(setup, set()).add(dit)
    for setup, group in groups.items():
        if group.dpr_type != "FLAT,LAMP":
            continue
        # darks at the flats' DIT (one per template): of the same filter first, else any filter
        dits = sorted(flat_dits.get(setup, ()))
        candidates = [c for d in dits for c in darks_by_dit.get((group.night, d), [])]
        same_filter = [c for c in candidates if c[0].filter == group.filter]
        chosen = same_filter or candidates
        group.darks = [path for _, path in chosen]
        for row, _ in chosen:
            group.newest = max(group.newest, row.ingested_at)
    return sorted(groups.values(), key=lambda g: g.key)


def _queued_input_sets(catalogue: Catalogue) -> set[frozenset[str]]:
    """The ``raw`` file sets of every calibration job already in the catalogue (any state)."""
    with catalogue.engine.connect() as conn:
        rows = conn.execute(
            select(Job.inputs).where(Job.workflow == CALIBRATION_WORKFLOW, Job.dataset_id.is_(None))
        ).all()
    return {frozenset(row.inputs.get("raw", [])) for row in rows if row.inputs}


def queue_calibrations(
    catalogue: Catalogue,
    night: dt.date | str | None = None,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
) -> list[int]:
    """Queue one ``irdis-calibrations`` job per calibration group of ``night`` (every night when
    None) that has no job yet; returns the new job ids.

    A group has a job when a calibration job (any state: a failed one is for a person to retry)
    was queued on exactly its files; a group that gained files gets a new job. Groups with a
    file ingested less than ``settle_s`` seconds ago are left for a later call (files of a
    template still arriving). ``parameters`` are ``param=value`` overrides of the recipe.
    """
    cutoff = utcnow() - dt.timedelta(seconds=settle_s)
    done = _queued_input_sets(catalogue)
    jobs = []
    for group in calibration_groups(catalogue, night):
        if group.newest > cutoff:
            continue
        if frozenset(str(p) for p in group.files) in done:
            continue
        jobs.append(
            jq.queue_job(
                catalogue.engine,
                inputs=group.job_inputs(),
                workflow=CALIBRATION_WORKFLOW,
                parameters=parameters,
                max_attempts=max_attempts,
            )
        )
    return jobs


# --------------------------------------------------------------------------------------------
# daily calibrations


@dataclass
class CalibrationPoll:
    """One poll of the watcher with calibrations: the watcher's own poll (ingest, association,
    science jobs) and the calibration jobs queued after it.

    The attributes of the watcher's poll read through (``poll.ingested``, ``poll.queued_jobs``),
    so an ``on_poll`` callback written for :func:`hcdc.pipeline.worker.watch` takes this too.
    """

    poll: Any  # hcdc.pipeline.worker.WatchPoll, or None when no folder was polled
    calibration_jobs: list[int]

    def __getattr__(self, name: str) -> Any:
        poll = self.__dict__.get("poll")
        if poll is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(poll, name)

    def as_dict(self) -> dict[str, Any]:
        out = self.poll.as_dict() if self.poll is not None else {}
        out["calibration_jobs"] = list(self.calibration_jobs)
        return out


def calibration_hook(
    catalogue: Catalogue,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    on_poll: Callable[[CalibrationPoll], None] | None = None,
) -> Callable[[Any], None]:
    """An ``on_poll`` callback for :func:`hcdc.pipeline.worker.watch`: after each poll's ingest,
    queue the calibration groups that have no job yet (:func:`queue_calibrations`), then pass
    the combined :class:`CalibrationPoll` to ``on_poll``.

    ``hcdc watch`` does this with ``watch(..., on_poll=calibration_hook(catalogue, on_poll=show))``.
    """

    def hook(poll: Any) -> None:
        jobs = queue_calibrations(catalogue, settle_s=settle_s, parameters=parameters)
        if on_poll is not None:
            on_poll(CalibrationPoll(poll, jobs))

    return hook


def watch_calibrations_once(
    catalogue: Catalogue,
    folder: str | Path | None = None,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    **watch_options: Any,
) -> CalibrationPoll:
    """One poll of the daily calibrations: ingest ``folder`` (when given) with
    :func:`hcdc.pipeline.worker.watch_once` (which also queues ready science datasets), then
    queue the new calibration groups. ``watch_options`` go to ``watch_once`` (``workflow``,
    ``copy``; its ``parameters`` are the science ones, given as ``science_parameters``)."""
    poll = None
    if folder is not None:
        from hcdc.pipeline.worker import watch_once

        science_parameters = watch_options.pop("science_parameters", ())
        poll = watch_once(
            catalogue, folder, settle_s=settle_s, parameters=science_parameters, **watch_options
        )
    jobs = queue_calibrations(catalogue, settle_s=settle_s, parameters=parameters)
    return CalibrationPoll(poll, jobs)
