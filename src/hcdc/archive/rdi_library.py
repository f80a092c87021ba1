"""Reference-star libraries for RDI, built from the whole archive (issue 15).

For one science Level 1 product, :func:`build_library` looks through every *other target's*
current Level 1 product that the building account may see (rule R18 of
:mod:`hcdc.archive.access`: :func:`~hcdc.archive.access.rdi_reference_products_clause`) and keeps
those of the **same set-up**: same instrument and arm, same filter (``files.filter`` of the
OBJECT files, e.g. the IRDIS ``INS COMB IFLT``), same coronagraph, and an OBJECT DIT within a
factor ``dit_factor`` (2) of the science DIT (median DIT of each dataset's OBJECT files), and
the same frame size. From those products it keeps the frames taken in **good conditions** when
thresholds are given (per-frame ``CONDITIONS`` table of the Level 1 product: Strehl >=
``strehl_min``, seeing <= ``seeing_max_arcsec``, tau0 >= ``tau0_min_s``; with a threshold, a
frame without telemetry is left out) and ranks them by their **mean Pearson correlation with the
science frames** in an annulus (first wavelength; default 2-8 lambda/D, lambda/D from the
science product's first wavelength, its plate scale and an 8.2 m aperture), keeping the
``max_frames`` best (200). With ``conditions_weight`` w > 0 the rank is by
``correlation - w * d`` instead, d the distance of the frame's seeing, tau0, Strehl, wind speed
and airmass (``conditions_quantities``) from the science sequence's medians (rms of the log ratios,
:func:`hcdc.science.postprocessing.rdi.conditions_distance`): frames taken in similar conditions
are preferred (default 0: correlation alone, unchanged).

The library is stored twice: a FITS file in the storage root (``rdi_libraries/<name>/library.fits``:
primary HDU the reference cube ``(wavelengths, frames, y, x)`` float32 on the science grid, and a
``FRAMES`` table rank / product / frame / correlation / conditions), and the catalogue rows of
:mod:`hcdc.archive.rdi_models` (the same table, the set-up, the selection, the file's sha256,
the candidate counts and the provenance: account, time, software version, git commit, the
sha256 of every source product's cube). The ``l2-rdi`` recipe reduces the science product with
it (:class:`hcdc.pipeline.recipes.postprocess.PostprocessRdi`).

Streaming: candidate products are read one at a time and only the ``max_frames`` best frames are
held, so memory is bounded by the library size, not the archive's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, insert, or_, select

from hcdc.archive import products as prod
from hcdc.archive.access import (
    AccessContext,
    AccessDenied,
    Principal,
    rdi_reference_products_clause,
    visible_rdi_libraries_clause,
)
from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.models import Dataset, File, utcnow
from hcdc.archive.pipeline_models import Product
from hcdc.archive.rdi_models import RdiLibrary, RdiLibraryFrame
from hcdc.archive.transactions import write_transaction
from hcdc.science.checksums import sha256_file

__all__ = [
    "AccessDenied",
    "LibrarySettings",
    "NotFound",
    "SetUp",
    "build_library",
    "library_detail",
    "level1_folder",
    "library_file",
    "list_libraries",
]

#: VLT unit telescope aperture (m), for the default annulus in lambda/D
TELESCOPE_DIAMETER_M = 8.2
MAS_PER_RAD = 180.0 / np.pi * 3600e3
LIBRARY_DIR = "rdi_libraries"
LIBRARY_FILE = "library.fits"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


@dataclass(frozen=True)
class LibrarySettings:
    """How a library is chosen (all recorded in its provenance).

    ``max_frames``: library size; ``dit_factor``: DIT within [DIT/f, DIT*f] of the science;
    ``strehl_min`` (fraction), ``seeing_max_arcsec``, ``tau0_min_s``: per-frame conditions
    thresholds (None: not applied); ``annulus_px``: (inner, outer) radii of the correlation
    annulus in pixels (None: ``annulus_ld`` lambda/D, default 2-8); ``conditions_weight``: rank
    by ``correlation - conditions_weight * d`` (d: conditions distance from the science
    sequence, module docstring; 0 = correlation alone); ``conditions_quantities``: the
    ``CONDITIONS`` columns that distance compares (default all five of
    :data:`~hcdc.science.postprocessing.rdi.CONDITION_COLUMNS`; libraries built before wind and
    airmass were added compared ``("SEEING", "TAU0", "STREHL")``, which reproduces them).
    """

    max_frames: int = 200
    dit_factor: float = 2.0
    strehl_min: float | None = None
    seeing_max_arcsec: float | None = None
    tau0_min_s: float | None = None
    annulus_px: tuple[float, float] | None = None
    annulus_ld: tuple[float, float] = (2.0, 8.0)
    conditions_weight: float = 0.0
    conditions_quantities: tuple[str, ...] = ("SEEING", "TAU0", "STREHL", "WIND", "AIRMASS")

    def __post_init__(self) -> None:
        from hcdc.science.postprocessing.rdi import CONDITION_COLUMNS, TELEMETRY_COLUMNS

        quantities = tuple(str(q).upper() for q in self.conditions_quantities)
        object.__setattr__(self, "conditions_quantities", quantities)
        unknown = [q for q in quantities if q not in CONDITION_COLUMNS]
        if unknown or len(set(quantities)) != len(quantities):
            raise ValueError(
                f"conditions_quantities must be distinct names among {', '.join(CONDITION_COLUMNS)}; "
                f"got {', '.join(quantities) or 'none'}"
            )
        if not set(quantities) & set(TELEMETRY_COLUMNS):
            raise ValueError(
                "conditions_quantities needs at least one telemetry quantity "
                f"({', '.join(TELEMETRY_COLUMNS)}); "
                f"got {', '.join(quantities) or 'none'}"
            )
        if not self.conditions_weight >= 0:
            raise ValueError(f"conditions_weight must be >= 0; got {self.conditions_weight}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1; got {self.max_frames}")
        if not self.dit_factor >= 1.0:
            raise ValueError(f"dit_factor must be >= 1; got {self.dit_factor}")
        for pair in (self.annulus_px, self.annulus_ld):
            if pair is not None and not 0 <= pair[0] < pair[1]:
                raise ValueError(f"an annulus needs 0 <= inner < outer; got {pair}")

    @property
    def uses_conditions(self) -> bool:
        return any(v is not None for v in (self.strehl_min, self.seeing_max_arcsec, self.tau0_min_s))

    @property
    def reads_conditions(self) -> bool:
        """Whether the candidates' conditions are read (thresholds or conditions ranking)."""
        return self.uses_conditions or self.conditions_weight > 0


@dataclass(frozen=True)
class SetUp:
    """Instrument set-up of a dataset's OBJECT files (DIT: their median, s)."""

    instrument: str | None
    arm: str | None
    filter: str | None
    coronagraph: str | None
    dit_s: float | None


def _setups(conn: Connection, dataset_ids: set[int]) -> dict[int, SetUp]:
    """The set-up of each dataset's current OBJECT files (the most common values)."""
    rows = conn.execute(
        select(File.dataset_id, File.instrument, File.arm, File.filter, File.coronagraph, File.dit).where(
            File.dataset_id.in_(dataset_ids), File.is_current, File.sequence_role == "OBJECT"
        )
    ).all()
    grouped: dict[int, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r.dataset_id, []).append(r)

    def common(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        return max(set(present), key=present.count) if present else None

    out = {}
    for ds, items in grouped.items():
        dits = [float(r.dit) for r in items if r.dit is not None]
        out[ds] = SetUp(
            common([r.instrument for r in items]),
            common([r.arm for r in items]),
            common([r.filter for r in items]),
            common([r.coronagraph for r in items]),
            median(dits) if dits else None,
        )
    return out


def _matches(science: SetUp, other: SetUp, dit_factor: float) -> str | None:
    """None when ``other`` has the science set-up, else the reason it does not."""
    for key in ("instrument", "arm", "filter", "coronagraph"):
        if getattr(science, key) != getattr(other, key):
            return f"{key} {getattr(other, key)!r} != {getattr(science, key)!r}"
    if science.dit_s is not None:
        if other.dit_s is None:
            return "no DIT"
        low, high = science.dit_s / dit_factor, science.dit_s * dit_factor
        if not low <= other.dit_s <= high:
            return f"DIT {other.dit_s:g} s outside {low:g}-{high:g} s"
    return None


#: the file that marks a Level 1 cube product's folder: IRDIS ``frames.fits``, IFS ``level1_ifs.fits``
LEVEL1_FILES = ("frames.fits", "level1_ifs.fits")


def level1_folder(conn: Connection, product_id: int, storage_root: Path) -> Path:
    """The folder of a Level 1 product (the one holding its ``frames.fits`` or ``level1_ifs.fits``)."""
    files = prod.product_files(conn, product_id, storage_root)
    for f in files:
        if Path(f["path"]).name in LEVEL1_FILES:
            return Path(f["path"]).parent
    raise LookupError(f"product {product_id} has no {' or '.join(LEVEL1_FILES)}: not a Level 1 cube")


def _read(path: Path) -> Any:
    from hcdc.instruments.registry import read_level1

    return read_level1(path)


def _level1_folders(conn: Connection, product_ids: list[int], storage_root: Path) -> dict[int, Path]:
    """The folder (holding one of :data:`LEVEL1_FILES`) of each of these products that has one,
    in one query."""
    from hcdc.archive.pipeline_models import ProductFile

    out: dict[int, Path] = {}
    for chunk in range(0, len(product_ids), 500):
        rows = conn.execute(
            select(ProductFile.product_id, ProductFile.path).where(
                ProductFile.product_id.in_(product_ids[chunk : chunk + 500]),
                or_(*(ProductFile.path.like(f"%{name}") for name in LEVEL1_FILES)),
            )
        ).all()
        for r in rows:
            if Path(r.path).name in LEVEL1_FILES:
                out.setdefault(r.product_id, (storage_root / r.path).parent)
    return out


def _read_frames(path: Path, conditions: bool = True) -> Any:
    """Science frames and conditions columns only (the instrument's cheap reader)."""
    from hcdc.instruments.registry import read_level1_frames

    return read_level1_frames(path, conditions)


def _column(conditions: Any, name: str, n: int) -> np.ndarray:
    """A per-frame conditions column (astropy Table or dict of arrays), NaN when absent."""
    if conditions is None:
        return np.full(n, np.nan)
    names = conditions.colnames if hasattr(conditions, "colnames") else conditions.keys()
    if name not in names:
        return np.full(n, np.nan)
    return np.asarray(conditions[name], dtype=float)


def _good_frames(conditions: Any, n: int, settings: LibrarySettings) -> np.ndarray:
    """Frames passing the conditions thresholds (all of them without thresholds)."""
    keep = np.ones(n, dtype=bool)
    if not settings.uses_conditions:
        return keep
    strehl, seeing, tau0 = (_column(conditions, c, n) for c in ("STREHL", "SEEING", "TAU0"))
    with np.errstate(invalid="ignore"):
        if settings.strehl_min is not None:
            keep &= strehl >= settings.strehl_min
        if settings.seeing_max_arcsec is not None:
            keep &= seeing <= settings.seeing_max_arcsec
        if settings.tau0_min_s is not None:
            keep &= tau0 >= settings.tau0_min_s
    return keep  # NaN (no telemetry) compares False: left out


def _median_conditions(product: Any, names: tuple[str, ...]) -> dict[str, float]:
    """Median of each conditions column over the frames where it is finite and > 0 (a column
    without such a frame is left out)."""
    n = product.cube.shape[1]
    out = {}
    for name in names:
        values = _column(product.conditions, name, n)
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            out[name] = float(np.median(values))
    return out


def _annulus(settings: LibrarySettings, science: Any) -> tuple[float, float]:
    if settings.annulus_px is not None:
        return float(settings.annulus_px[0]), float(settings.annulus_px[1])
    wave_um = float(np.asarray(science.wavelengths_um)[0])
    ld_px = wave_um * 1e-6 / TELESCOPE_DIAMETER_M * MAS_PER_RAD / float(science.pixel_scale_mas)
    return settings.annulus_ld[0] * ld_px, settings.annulus_ld[1] * ld_px


def _library_name(conn: Connection, name: str | None, science_id: int, now: dt.datetime) -> str:
    if name is None:
        name = f"rdi-p{science_id}-{now:%Y%m%dT%H%M%S}"
    if not _NAME.match(name):
        raise ValueError(
            f"library name {name!r}: use letters, digits and . _ + - (at most 128, not starting with a sign)"
        )
    if conn.scalar(select(RdiLibrary.id).where(RdiLibrary.name == name)) is not None:
        raise ValueError(f"an RDI library named {name!r} exists already")
    return name


def build_library(
    conn: Connection,
    engine: Engine,
    user: Principal,
    storage_root: str | Path,
    science_product_id: int,
    *,
    name: str | None = None,
    settings: LibrarySettings | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Build and store the reference library of Level 1 product ``science_product_id`` for
    ``user`` (see the module docstring); returns :func:`library_detail` of the new library.

    ``conn`` reads (as ``user`` at ``now``), ``engine`` writes the rows in one transaction.
    Raises :class:`NotFound` when the science product does not exist or is hidden from
    ``user``, ``ValueError`` when it is not a Level 1 product of a dataset, when no other
    product qualifies, or for a taken name.
    """
    from astropy.io import fits

    from hcdc.science.postprocessing.rdi import (
        TELEMETRY_COLUMNS,
        AnnulusCorrelation,
        conditions_distance,
        rank_references,
    )

    settings = settings or LibrarySettings()
    now = now or utcnow()
    root = Path(storage_root)
    access = AccessContext(conn, user, now)
    try:
        if not access.can_see_product(science_product_id):
            raise NotFound(f"no product with id {science_product_id}")
    except LookupError:
        raise NotFound(f"no product with id {science_product_id}") from None
    sci_row = conn.execute(
        select(Product.id, Product.level, Product.dataset_id, Product.target, Product.product_type).where(
            Product.id == science_product_id
        )
    ).one()
    if sci_row.level != 1 or sci_row.dataset_id is None:
        raise ValueError(f"product {science_product_id} is not a Level 1 product of a dataset")
    name = _library_name(conn, name, science_product_id, now)
    sci_dir = level1_folder(conn, science_product_id, root)
    science = _read(sci_dir)
    sci_cube = np.asarray(science.cube, dtype=np.float32)  # (wavelengths, frames, y, x)
    r_in, r_out = _annulus(settings, science)
    sci_setup = _setups(conn, {sci_row.dataset_id}).get(sci_row.dataset_id)
    if sci_setup is None:
        raise ValueError(f"product {science_product_id}: its dataset has no OBJECT files (set-up unknown)")
    sci_target = conn.scalar(select(Dataset.target).where(Dataset.id == sci_row.dataset_id)) or sci_row.target
    sci_conditions: dict[str, float] = {}
    if settings.conditions_weight > 0:
        quantities = settings.conditions_quantities
        sci_conditions = _median_conditions(_read_frames(sci_dir, True), quantities)
        if not set(sci_conditions) & set(TELEMETRY_COLUMNS):
            raise ValueError(
                f"product {science_product_id} has no per-frame conditions ({', '.join(quantities)}: no "
                "SPARTA telemetry), so references cannot be ranked by similar conditions"
            )

    # the datasets' targets are read in a second query: the visibility clause correlates on datasets
    candidates = conn.execute(
        select(Product.id, Product.dataset_id, Product.target)
        .where(
            rdi_reference_products_clause(user, now),
            Product.id != science_product_id,
            Product.product_type == sci_row.product_type,
            Product.dataset_id != sci_row.dataset_id,
        )
        .order_by(Product.id)
    ).all()
    ds_targets = dict(
        conn.execute(
            select(Dataset.id, Dataset.target).where(Dataset.id.in_({c.dataset_id for c in candidates}))
        ).all()
    )
    setups = _setups(conn, {c.dataset_id for c in candidates})
    rejected: dict[str, int] = {}

    def reject(reason: str) -> None:
        rejected[reason] = rejected.get(reason, 0) + 1

    folders = _level1_folders(conn, [c.id for c in candidates], root)
    ranker = AnnulusCorrelation(sci_cube[0], r_in, r_out)
    # pass 1: the correlation of every qualifying frame (metadata only, no frame kept)
    corrs: list[np.ndarray] = []
    distances: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    examined = 0
    for c in candidates:
        target = ds_targets.get(c.dataset_id) or c.target
        if sci_target and target and _same_name(target, sci_target):
            reject("same target")
            continue
        setup = setups.get(c.dataset_id)
        why = "no OBJECT files" if setup is None else _matches(sci_setup, setup, settings.dit_factor)
        if why is not None:
            reject(f"set-up: {why.split(' ')[0]}")
            continue
        folder = folders.get(c.id)
        try:
            if folder is None:
                raise LookupError(f"product {c.id} has no Level 1 cube file")
            product = _read_frames(folder, settings.reads_conditions)
        except (LookupError, ValueError, OSError):
            reject("unreadable Level 1 product")
            continue
        cube = product.cube  # memory-mapped
        if cube.ndim != 4 or cube.shape[0] != sci_cube.shape[0] or cube.shape[-2:] != sci_cube.shape[-2:]:
            reject("cube shape")
            continue
        n = cube.shape[1]
        examined += n
        keep = _good_frames(product.conditions, n, settings)
        if not keep.any():
            reject("no frame in the conditions thresholds")
            continue
        index = np.flatnonzero(keep)
        corrs.append(ranker.mean_correlation(np.asarray(cube[0][index])))
        if sci_conditions:
            quantities = settings.conditions_quantities
            columns = {c: _column(product.conditions, c, n)[index] for c in quantities}
            distances.append(conditions_distance(columns, sci_conditions, quantities))
        metas.extend({"product_id": c.id, "frame_index": int(k), "target": target} for k in index)
    if not metas:
        raise ValueError(
            f"product {science_product_id}: no reference frame found among {len(candidates)} Level 1 "
            f"product(s) you may see (rejected: {json.dumps(rejected, sort_keys=True) or 'none'})"
        )
    all_corr = np.concatenate(corrs)
    order = rank_references(
        all_corr,
        np.concatenate(distances) if distances else None,
        settings.conditions_weight,
        settings.max_frames,
    )
    best_meta = [{**metas[i], "correlation": float(all_corr[i])} for i in order]
    # pass 2: the kept frames, read from their products in rank order
    best_frames = np.empty((sci_cube.shape[0], len(best_meta), *sci_cube.shape[-2:]), dtype=np.float32)
    by_product: dict[int, list[int]] = {}
    for rank, m in enumerate(best_meta):
        by_product.setdefault(m["product_id"], []).append(rank)
    for pid, ranks in by_product.items():
        product = _read_frames(folders[pid])
        frames = [best_meta[r]["frame_index"] for r in ranks]
        best_frames[:, ranks] = np.asarray(product.cube[:, frames], dtype=np.float32)
        n = product.cube.shape[1]
        columns = {k: _column(product.conditions, k, n) for k in ("MJD", "STREHL", "SEEING", "TAU0")}
        for r, k in zip(ranks, frames, strict=True):
            best_meta[r].update(
                mjd=_finite(columns["MJD"][k]),
                strehl=_finite(columns["STREHL"][k]),
                seeing_arcsec=_finite(columns["SEEING"][k]),
                tau0_s=_finite(columns["TAU0"][k]),
            )
    sources = {
        pid: {
            "product_id": pid,
            "target": best_meta[ranks[0]]["target"],
            "dataset_id": next(c.dataset_id for c in candidates if c.id == pid),
            "cube_sha256": _cube_sha(folders[pid]),
        }
        for pid, ranks in by_product.items()
    }
    used = sorted({m["product_id"] for m in best_meta})
    record = {
        "kind": "rdi-library",
        "science_product_id": science_product_id,
        "science_cube_sha256": _cube_sha(sci_dir),
        "settings": _settings_json(settings),
        "annulus_px": [r_in, r_out],
        **({"science_conditions": sci_conditions} if sci_conditions else {}),
        "set_up": asdict(sci_setup),
        "candidate_products": len(candidates),
        "candidate_frames": examined,
        "rejected_products": rejected,
        "source_products": [sources[p] for p in used],
        "built_by": user.name,
        "built_at": now.isoformat(timespec="seconds"),
        "rule": "R18: built from the Level 1 products the account may see",
        **_software(),
    }

    folder = root / LIBRARY_DIR / name
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / LIBRARY_FILE
    _write_fits(
        fits, path.with_suffix(".part"), best_frames, best_meta, name, science_product_id, r_in, r_out
    )
    os.replace(path.with_suffix(".part"), path)
    digest = sha256_file(path)
    with write_transaction(engine) as wconn:
        library_id = wconn.execute(
            insert(RdiLibrary)
            .values(
                name=name,
                science_product_id=science_product_id,
                target=sci_target,
                instrument=sci_setup.instrument,
                arm=sci_setup.arm,
                filter=sci_setup.filter,
                coronagraph=sci_setup.coronagraph,
                dit_min_s=None if sci_setup.dit_s is None else sci_setup.dit_s / settings.dit_factor,
                dit_max_s=None if sci_setup.dit_s is None else sci_setup.dit_s * settings.dit_factor,
                annulus_inner_px=r_in,
                annulus_outer_px=r_out,
                n_candidates=examined,
                n_frames=len(best_meta),
                path=path.relative_to(root).as_posix(),
                sha256=digest,
                built_by=user.name,
                created_at=now,
                record=record,
            )
            .returning(RdiLibrary.id)
        ).scalar_one()
        wconn.execute(
            insert(RdiLibraryFrame),
            [
                {"library_id": library_id, "rank": rank, **{k: v for k, v in m.items() if k != "target"}}
                for rank, m in enumerate(best_meta)
            ],
        )
    if conn.in_transaction():
        conn.rollback()  # see the new rows
    return library_detail(conn, user, library_id, root, now=now)


def _cube_sha(folder: Path) -> dict[str, str]:
    """sha256 of a Level 1 product's FITS files (its cube among them): what the library was cut from."""
    return {p.name: sha256_file(p) for p in sorted(Path(folder).glob("*.fits"))}


def _same_name(a: str, b: str) -> bool:
    """Target names equal up to case, blanks and underscores (HD 1 = HD1 = hd_1)."""
    return re.sub(r"[\s_]+", "", a).lower() == re.sub(r"[\s_]+", "", b).lower()


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _settings_json(settings: LibrarySettings) -> dict[str, Any]:
    out = asdict(settings)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _software() -> dict[str, Any]:
    import hcdc
    from hcdc.runtime.versions import read_git_commit

    try:
        commit: str | None = read_git_commit()
    except OSError:
        commit = None
    return {"software_version": hcdc.__version__, "git_commit": commit}


def _write_fits(
    fits: Any,
    path: Path,
    frames: np.ndarray,
    meta: list[dict[str, Any]],
    name: str,
    science_id: int,
    r_in: float,
    r_out: float,
) -> None:
    from astropy.table import Table

    primary = fits.PrimaryHDU(np.ascontiguousarray(frames, dtype=np.float32))
    h = primary.header
    h["HIERARCH HCDC PRODUCT"] = ("RDI_LIBRARY", "RDI reference library")
    h["HIERARCH HCDC RDILIB"] = (name, "library name")
    h["HIERARCH HCDC RDISCI"] = (science_id, "science product id")
    h["HIERARCH HCDC RDIRIN"] = (r_in, "[px] annulus inner radius")
    h["HIERARCH HCDC RDIROUT"] = (r_out, "[px] annulus outer radius")
    h["COMMENT"] = "cube (wavelengths, frames, y, x) on the science grid, star at (n//2, n//2)"
    table = Table(
        {
            "RANK": np.arange(len(meta), dtype=np.int32),
            "PRODUCT_ID": np.array([m["product_id"] for m in meta], dtype=np.int64),
            "FRAME": np.array([m["frame_index"] for m in meta], dtype=np.int32),
            "CORRELATION": np.array([m["correlation"] for m in meta]),
            "MJD": np.array([np.nan if m["mjd"] is None else m["mjd"] for m in meta]),
            "STREHL": np.array([np.nan if m["strehl"] is None else m["strehl"] for m in meta]),
            "SEEING": np.array([np.nan if m["seeing_arcsec"] is None else m["seeing_arcsec"] for m in meta]),
            "TAU0": np.array([np.nan if m["tau0_s"] is None else m["tau0_s"] for m in meta]),
            "TARGET": np.array([str(m["target"] or "") for m in meta]),
        }
    )
    table["SEEING"].unit, table["TAU0"].unit, table["MJD"].unit = "arcsec", "s", "d"
    hdu = fits.table_to_hdu(table)
    hdu.name = "FRAMES"
    fits.HDUList([primary, hdu]).writeto(path, overwrite=True)


def _library_row(conn: Connection, ref: int | str) -> Any:
    column = RdiLibrary.id if isinstance(ref, int) else RdiLibrary.name
    return conn.execute(select(RdiLibrary).where(column == ref)).first()


def _require(conn: Connection, user: Principal, ref: int | str, now: dt.datetime | None) -> Any:
    row = _library_row(conn, ref)
    if row is None:
        raise NotFound(f"no RDI library {ref}")
    lib = row
    if not AccessContext(conn, user, now).can_see_rdi_library(lib.id):
        raise NotFound(f"no RDI library {ref}")  # hidden = absent (nobody learns it exists)
    return lib


def library_detail(
    conn: Connection,
    user: Principal,
    ref: int | str,
    storage_root: str | Path | None = None,
    *,
    now: dt.datetime | None = None,
    frames: bool = True,
) -> dict[str, Any]:
    """A library ``user`` may see (R18; by id or name): set-up, selection, provenance and,
    with ``frames``, its frames best first. :class:`NotFound` otherwise."""
    lib = _require(conn, user, ref, now)
    out = _summary(lib)
    out["record"] = lib.record
    if frames:
        rows = conn.execute(
            select(RdiLibraryFrame, Product.target.label("source_target"))
            .outerjoin(Product, Product.id == RdiLibraryFrame.product_id)
            .where(RdiLibraryFrame.library_id == lib.id)
            .order_by(RdiLibraryFrame.rank)
        ).all()
        out["frames"] = [
            {
                "rank": f.rank,
                "product_id": f.product_id,
                "target": f.source_target,
                "frame_index": f.frame_index,
                "correlation": f.correlation,
                "mjd": f.mjd,
                "strehl": f.strehl,
                "seeing_arcsec": f.seeing_arcsec,
                "tau0_s": f.tau0_s,
            }
            for f in rows
        ]
        per_product: dict[int | None, int] = {}
        for f in out["frames"]:
            per_product[f["product_id"]] = per_product.get(f["product_id"], 0) + 1
        out["frames_per_product"] = [{"product_id": k, "frames": v} for k, v in per_product.items()]
    return out


def _summary(lib: Any) -> dict[str, Any]:
    return {
        "id": lib.id,
        "name": lib.name,
        "science_product_id": lib.science_product_id,
        "target": lib.target,
        "instrument": lib.instrument,
        "arm": lib.arm,
        "filter": lib.filter,
        "coronagraph": lib.coronagraph,
        "dit_range_s": [lib.dit_min_s, lib.dit_max_s],
        "annulus_px": [lib.annulus_inner_px, lib.annulus_outer_px],
        "n_candidates": lib.n_candidates,
        "n_frames": lib.n_frames,
        "sha256": lib.sha256,
        "built_by": lib.built_by,
        "created_at": lib.created_at.isoformat(timespec="seconds"),
    }


def list_libraries(
    conn: Connection,
    user: Principal,
    *,
    science_product_id: int | None = None,
    now: dt.datetime | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The libraries ``user`` may see (R18), newest first; optionally those of one science product."""
    query = (
        select(RdiLibrary)
        .where(visible_rdi_libraries_clause(user, now or utcnow()))
        .order_by(RdiLibrary.id.desc())
        .limit(limit)
    )
    if science_product_id is not None:
        query = query.where(RdiLibrary.science_product_id == science_product_id)
    return [_summary(lib) for lib in conn.execute(query).all()]


def library_file(
    conn: Connection,
    user: Principal,
    ref: int | str,
    storage_root: str | Path,
    *,
    now: dt.datetime | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The library FITS file of a library ``user`` may see, checked against its stored sha256,
    with the library's summary. ``ValueError`` naming the file when it is missing or changed."""
    lib = _require(conn, user, ref, now)
    path = Path(storage_root) / lib.path
    if not path.is_file():
        raise ValueError(f"RDI library {lib.name}: its file {path} is missing")
    if sha256_file(path) != lib.sha256:
        raise ValueError(f"RDI library {lib.name}: its file {path} changed since it was built (sha256)")
    return path, _summary(lib)
