"""ObsCore 1.1 (``ivoa.obscore``): one row per published observation product, kept in the catalogue.

What is published (``calib_level`` as in ObsCore 1.1 §4.4 and DESIGN.md's levels):

============================== ============= ================= ===================================
source                         calib_level   dataproduct_type  obs_collection
============================== ============= ================= ===================================
Level 0 raw science file       0             image (IFS: cube) ``<INSTRUMENT> raw``
Level 1 product (master cube)  2             cube              ``<INSTRUMENT> L1``
Level 2 product                3             image / cube      ``<INSTRUMENT> L2``
OIFITS granule                 granule's, 2  visibility        granule's, else ``<FACILITY> OIFITS``
Level 0 granule (observation   0             visibility        granule's, else ``<FACILITY> raw``
log: MIRC-X/MYSTIC raw file,
ObsPortal exposure, no file)
============================== ============= ================= ===================================

Calibration raw files are not published (they are reachable from their science products through
DataLink's ``#calibration``); a raw file that has granules (OIFITS, or a MIRC-X/MYSTIC raw file's
observation log) is published through its granules. Only the current version of a file or product
has a row, and only the current granules: a granule superseded by a later reduction of the same
granule (:func:`hcdc.archive.granules.superseded_clause`: same collection, target, INSNAME, night and
level in a current file ingested later) leaves ``ivoa.obscore``, as in OiDB, whose ObsCore table holds
only the granules in force (re-imports delete the previous records; nothing is versioned there); it
stays in the catalogue, listed with ``--all-versions`` and resolved by DataLink through its DID
(citable). Every other granule is a row, with or without a file: a Level 0 granule imported from JMMC
ObsPortal (:mod:`hcdc.archive.obsportal`) has no file; its row follows OiDB's conventions
(``calib_level`` 0, ``obs_id`` the exposure id, ``access_url`` the exposure's page at its source,
``text/html``, when that is an http(s) URL) and it is visible by the granule rules R11-R13.

Storage: the physical table ``obscore`` (:class:`ObsCoreRow`) holds what does not depend on who asks
or where the service runs. Three ObsCore columns are computed when a query runs
(:func:`published_select`): ``obs_publisher_did`` (``ivo://AUTHORITY/KIND?ID`` by
:func:`hcdc.archive.identifiers.publisher_did`, the authority being the ``vo_authority`` setting),
``access_url`` (the service's DataLink endpoint for that DID, absolute) and ``data_rights``
(``public`` once ``obs_release_date`` is past, else the declared rights of a granule's collection,
``secure`` or ``proprietary`` as in OiDB, and ``proprietary`` for files and products: release by the
clock); a row whose source has its own link (a Level 0 exposure's page, ``hcdc_access_url``) gives
that link as ``access_url`` instead of DataLink. Which rows a user sees is decided by
``archive/access.py`` (:func:`hcdc.archive.access.visible_sources_clause`), on the row's source
file, product or (without a file) granule, so TAP answers exactly what the portal shows.

Units: ``s_ra``, ``s_dec``, ``s_fov`` in degrees (ICRS); ``s_region`` an ADQL/STC-S polygon string
(``POLYGON ICRS ra1 dec1 ra2 dec2 ...``, degrees, counter-clockwise seen from inside the sphere);
``s_resolution`` in arcsec; ``t_min``/``t_max`` MJD (UTC); ``t_exptime`` seconds; ``em_min``/
``em_max`` metres (vacuum wavelength); ``access_estsize`` kbyte (1024 bytes).

Rows are written in the transaction that writes their source (ingest, product registration) by
:func:`sync_file_rows` and :func:`sync_product_rows`, and can be rebuilt whole with
:func:`rebuild_obscore` (``hcdc vo rebuild-obscore``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column

from hcdc.archive.access import (
    DEFAULT_POLICY,
    AccessContext,
    Policy,
    Principal,
    datetime_of_mjd,
    granule_public_date,
    local_operator,
    programme_key,
    programme_key_sql,
    utc_naive,
    visible_sources_clause,
)
from hcdc.archive.granules import GranuleRow, superseded_clause
from hcdc.archive.identifiers import publisher_did
from hcdc.archive.interferometry_models import OiCollection
from hcdc.archive.models import Base, Dataset, File, utcnow
from hcdc.archive.pipeline_models import Product, ProductFile

#: MIME type of ``access_url``: a row points at its DataLink document (DataLink 1.1 §3.3) ...
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
#: ... or, for a Level 0 exposure without a file, at the exposure's web page at its source
SOURCE_PAGE_FORMAT = "text/html"

#: Fields of view (arcsec, side of the square field) of the imaging instruments. Sources: ESO
#: SPHERE user manual (IRDIS 11" x 12.5", IFS 1.73" x 1.73", ZIMPOL 3.6" x 3.6"), NACO user manual
#: (S13 camera 14"; S27 and L27 28"). The larger side is used: the region must contain the data.
FIELD_OF_VIEW_ARCSEC: dict[str, float] = {
    "IRDIS": 12.5,
    "IFS": 1.73,
    "ZIMPOL": 3.6,
    "NACO": 28.0,
    "SPHERE": 12.5,
}
#: Field of an interferometric granule (arcsec): the single-telescope field, about lambda/D of
#: the 1-2 m apertures of CHARA and the VLTI ATs in H and K bands.
INTERFEROMETRY_FOV_ARCSEC = 1.0
#: Diffraction-limited angular resolution lambda/D uses this aperture (m) for VLT instruments.
VLT_APERTURE_M = 8.2
RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0

#: calib_level of a product level (DESIGN.md L1 -> ObsCore 2, L2 -> 3)
CALIB_LEVEL_OF_PRODUCT_LEVEL = {1: 2, 2: 3}


class ObsCoreRow(Base):
    """One published observation product (stored part of ``ivoa.obscore``; see the module docstring)."""

    __tablename__ = "obscore"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # what the row publishes: kind (file / product / granule) and that row's id
    hcdc_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    hcdc_key: Mapped[int] = mapped_column(Integer, nullable=False)
    # rights are decided on these (archive/access.py); a granule's file is its source
    hcdc_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    hcdc_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    hcdc_dataset_id: Mapped[int | None] = mapped_column(Integer)
    hcdc_prog_id: Mapped[str | None] = mapped_column(String(64))
    hcdc_filter: Mapped[str | None] = mapped_column(String(64))
    hcdc_product_type: Mapped[str | None] = mapped_column(String(64))
    # a Level 0 exposure's page at its source (http(s) only): its access_url; NULL: DataLink
    hcdc_access_url: Mapped[str | None] = mapped_column(Text)
    # a granule's declared rights (secure, proprietary) until obs_release_date; NULL: proprietary
    hcdc_data_rights: Mapped[str | None] = mapped_column(String(16))

    dataproduct_type: Mapped[str] = mapped_column(String(16), nullable=False)
    dataproduct_subtype: Mapped[str | None] = mapped_column(String(64))
    calib_level: Mapped[int] = mapped_column(Integer, nullable=False)
    obs_collection: Mapped[str] = mapped_column(String(128), nullable=False)
    obs_id: Mapped[str] = mapped_column(String(255), nullable=False)
    obs_creation_date: Mapped[dt.datetime | None] = mapped_column(DateTime)
    obs_release_date: Mapped[dt.datetime | None] = mapped_column(DateTime)  # None: never by the clock
    access_format: Mapped[str] = mapped_column(String(64), nullable=False)
    access_estsize: Mapped[int | None] = mapped_column(BigInteger)  # kbyte
    target_name: Mapped[str | None] = mapped_column(String(128))
    s_ra: Mapped[float | None] = mapped_column(Float)  # deg
    s_dec: Mapped[float | None] = mapped_column(Float)  # deg
    s_fov: Mapped[float | None] = mapped_column(Float)  # deg
    s_region: Mapped[str | None] = mapped_column(Text)  # STC-S polygon, deg
    s_resolution: Mapped[float | None] = mapped_column(Float)  # arcsec
    s_xel1: Mapped[int | None] = mapped_column(BigInteger)
    s_xel2: Mapped[int | None] = mapped_column(BigInteger)
    t_min: Mapped[float | None] = mapped_column(Float)  # MJD
    t_max: Mapped[float | None] = mapped_column(Float)  # MJD
    t_exptime: Mapped[float | None] = mapped_column(Float)  # s
    t_resolution: Mapped[float | None] = mapped_column(Float)  # s
    t_xel: Mapped[int | None] = mapped_column(BigInteger)
    em_min: Mapped[float | None] = mapped_column(Float)  # m
    em_max: Mapped[float | None] = mapped_column(Float)  # m
    em_res_power: Mapped[float | None] = mapped_column(Float)
    em_xel: Mapped[int | None] = mapped_column(BigInteger)
    o_ucd: Mapped[str | None] = mapped_column(String(64))
    pol_states: Mapped[str | None] = mapped_column(String(64))
    pol_xel: Mapped[int | None] = mapped_column(BigInteger)
    facility_name: Mapped[str | None] = mapped_column(String(64))
    instrument_name: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("hcdc_kind", "hcdc_key", name="uq_obscore_source"),
        # bounding-box prefilter of cone and region queries on SQLite (PostgreSQL: a GiST index
        # on spoint(radians(s_ra), radians(s_dec)), created by the migration)
        Index("ix_obscore_s_dec_s_ra", "s_dec", "s_ra"),
        Index("ix_obscore_t_min", "t_min"),
        Index("ix_obscore_s_fov", "s_fov"),  # SIA: MAX(s_fov) widens the POS prefilter
        Index("ix_obscore_target_name", "target_name"),
        Index("ix_obscore_file_id", "hcdc_file_id"),
        Index("ix_obscore_product_id", "hcdc_product_id"),
        # PostgreSQL only (pgSphere): what ADQL's CONTAINS(POINT(s_ra, s_dec), ...) is translated to
        Index(
            "ix_obscore_spoint", text("spoint(radians(s_ra), radians(s_dec))"), postgresql_using="gist"
        ).ddl_if(dialect="postgresql"),
    )


# --------------------------------------------------------------------------------------------
# geometry


def square_region(ra: float, dec: float, side_deg: float) -> str:
    """STC-S polygon of a square field ``side_deg`` wide centred on (ra, dec), degrees.

    The corners are offsets of +-side/2 along the tangent plane (gnomonic), so the polygon is the
    field on the sky also near the poles; vertices counter-clockwise (east of north first).
    """
    half = math.radians(side_deg) / 2.0
    corners = [(half, half), (-half, half), (-half, -half), (half, -half)]
    parts = []
    for xi, eta in corners:
        lon, lat = _tangent_to_sky(math.radians(ra), math.radians(dec), xi, eta)
        parts.append(f"{math.degrees(lon) % 360.0:.8f} {math.degrees(lat):.8f}")
    return "POLYGON ICRS " + " ".join(parts)


def _tangent_to_sky(ra0: float, dec0: float, xi: float, eta: float) -> tuple[float, float]:
    """Inverse gnomonic projection (radians): standard coordinates -> (ra, dec)."""
    denom = math.cos(dec0) - eta * math.sin(dec0)
    ra = ra0 + math.atan2(xi, denom)
    dec = math.atan2(math.sin(dec0) + eta * math.cos(dec0), math.hypot(xi, denom))
    return ra, dec


def _diffraction_arcsec(wavelength_m: float | None, aperture_m: float = VLT_APERTURE_M) -> float | None:
    return None if wavelength_m is None else wavelength_m / aperture_m * RAD_TO_ARCSEC


def _fov_deg(instrument: str | None, arm: str | None) -> float | None:
    for key in (arm, instrument):
        if key and key.upper() in FIELD_OF_VIEW_ARCSEC:
            return FIELD_OF_VIEW_ARCSEC[key.upper()] / 3600.0
    return None


def _um_to_m(value: float | None) -> float | None:
    return None if value is None else value * 1e-6


# --------------------------------------------------------------------------------------------
# row builders


@dataclass(frozen=True)
class _Pointing:
    """What the science files of a dataset (or one file) say about where, when and in which band."""

    ra: float | None
    dec: float | None
    t_min: float | None
    t_max: float | None
    exptime: float | None
    em_min: float | None  # m
    em_max: float | None  # m
    instrument: str | None
    arm: str | None
    filter: str | None
    target: str | None
    prog_id: str | None


def _spatial(ra: float | None, dec: float | None, fov: float | None) -> dict[str, Any]:
    region = square_region(ra, dec, fov) if None not in (ra, dec, fov) else None
    return {"s_ra": ra, "s_dec": dec, "s_fov": fov, "s_region": region}


def _spectral(em_min: float | None, em_max: float | None) -> dict[str, Any]:
    power = None
    if em_min is not None and em_max is not None and em_max > em_min:
        power = (em_min + em_max) / 2.0 / (em_max - em_min)
    return {"em_min": em_min, "em_max": em_max, "em_res_power": power}


def _dataproduct_type(arm: str | None, default: str = "image") -> str:
    return "cube" if arm and arm.upper() == "IFS" else default


def file_row(conn: Connection, access: AccessContext, file: Any) -> dict[str, Any] | None:
    """The ObsCore row of a raw science file (``files`` row), None when it is not published."""
    if file.is_calibration or not file.is_current:
        return None
    exptime = file.dit * file.ndit if file.dit is not None and file.ndit is not None else file.dit
    t_max = file.mjd_end
    if t_max is None and file.mjd_obs is not None and exptime is not None:
        t_max = file.mjd_obs + exptime / 86400.0
    fov = _fov_deg(file.instrument, file.arm)
    em_min, em_max = _um_to_m(file.wavelength_min), _um_to_m(file.wavelength_max)
    name = file.path.rsplit("/", 1)[-1]
    return {
        "hcdc_kind": "file",
        "hcdc_key": file.id,
        "hcdc_file_id": file.id,
        "hcdc_product_id": None,
        "hcdc_dataset_id": file.dataset_id,
        "hcdc_prog_id": file.prog_id,
        "hcdc_filter": file.filter,
        "hcdc_product_type": f"raw:{file.type}" if file.type else "raw",
        "hcdc_access_url": None,
        "hcdc_data_rights": None,
        "dataproduct_type": _dataproduct_type(file.arm),
        "dataproduct_subtype": file.file_class,
        "calib_level": 0,
        "obs_collection": f"{file.instrument} raw",
        "obs_id": (file.dataset_key or name)[:255],
        "obs_creation_date": file.date_obs,
        "obs_release_date": access.file_public_date(file.id),
        "access_format": DATALINK_FORMAT,
        "access_estsize": math.ceil(file.size / 1024),
        "target_name": file.target,
        **_spatial(file.ra, file.dec, fov),
        "s_resolution": _diffraction_arcsec(em_max),
        "s_xel1": None,
        "s_xel2": None,
        "t_min": file.mjd_obs,
        "t_max": t_max,
        "t_exptime": exptime,
        "t_resolution": file.dit,
        "t_xel": file.ndit,
        **_spectral(em_min, em_max),
        "em_xel": None,
        "o_ucd": "phot.count",
        "pol_states": None,
        "pol_xel": None,
        "facility_name": "ESO-VLT-U3" if file.instrument in ("SPHERE", "NACO") else None,
        "instrument_name": f"{file.instrument}/{file.arm}" if file.arm else file.instrument,
    }


def _dataset_pointing(conn: Connection, dataset_id: int | None) -> _Pointing | None:
    if dataset_id is None:
        return None
    f = File.__table__.c
    row = conn.execute(
        select(
            func.avg(f.ra).label("ra"),
            func.avg(f.dec).label("dec"),
            func.min(f.mjd_obs).label("t_min"),
            func.max(func.coalesce(f.mjd_end, f.mjd_obs)).label("t_max"),
            func.sum(f.dit * func.coalesce(f.ndit, 1)).label("exptime"),
            func.min(f.wavelength_min).label("wl_min"),
            func.max(f.wavelength_max).label("wl_max"),
            func.max(f.instrument).label("instrument"),
            func.max(f.arm).label("arm"),
            func.max(f.filter).label("filter"),
        ).where(f.dataset_id == dataset_id, f.is_current, ~f.is_calibration)
    ).first()
    ds = conn.execute(select(Dataset).where(Dataset.id == dataset_id)).first()
    if ds is None:
        return None
    em_min, em_max = _um_to_m(row.wl_min), _um_to_m(row.wl_max)
    if em_min is None and ds.setup:
        band = _filter_band_um(ds.setup)
        if band is not None:
            em_min, em_max = band[0] * 1e-6, band[1] * 1e-6
    return _Pointing(
        ra=row.ra,
        dec=row.dec,
        t_min=row.t_min if row.t_min is not None else ds.mjd_start,
        t_max=row.t_max if row.t_max is not None else (ds.mjd_end or ds.mjd_start),
        exptime=row.exptime if row.exptime is not None else ds.exposure_s,
        em_min=em_min,
        em_max=em_max,
        instrument=row.instrument or ds.instrument,
        arm=row.arm or ds.arm,
        filter=row.filter or ds.setup,
        target=ds.target,
        prog_id=ds.prog_id,
    )


def _filter_band_um(setup: str) -> tuple[float, float] | None:
    """(min, max) wavelength in micrometres of a SPHERE/IRDIS filter combination named in ``setup``."""
    from hcdc.instruments.sphere.irdis.metadata import irdis_wavelength_range

    for word in setup.replace("/", " ").split():
        band = irdis_wavelength_range(word)
        if band:
            return band
    return None


def product_row(conn: Connection, access: AccessContext, product: Any) -> dict[str, Any] | None:
    """The ObsCore row of a Level 1 or Level 2 product (``products`` row), None when not published."""
    if (
        product.level not in CALIB_LEVEL_OF_PRODUCT_LEVEL
        or product.status != "done"
        or not product.is_current
    ):
        return None
    pointing = _dataset_pointing(conn, product.dataset_id)
    p = pointing or _Pointing(*([None] * 12))
    size = conn.scalar(select(func.sum(ProductFile.size)).where(ProductFile.product_id == product.id))
    default_type = "cube" if product.level == 1 or "cube" in product.product_type else "image"
    instrument = p.instrument or "hcdc"
    return {
        "hcdc_kind": "product",
        "hcdc_key": product.id,
        "hcdc_file_id": None,
        "hcdc_product_id": product.id,
        "hcdc_dataset_id": product.dataset_id,
        "hcdc_prog_id": p.prog_id,
        "hcdc_filter": p.filter,
        "hcdc_product_type": product.product_type,
        "hcdc_access_url": None,
        "hcdc_data_rights": None,
        "dataproduct_type": "cube" if default_type == "cube" else _dataproduct_type(p.arm),
        "dataproduct_subtype": product.product_type,
        "calib_level": CALIB_LEVEL_OF_PRODUCT_LEVEL[product.level],
        "obs_collection": f"{instrument} L{product.level}",
        "obs_id": product.lineage[:255],
        "obs_creation_date": product.created_at,
        "obs_release_date": access.product_public_date(product.id),
        "access_format": DATALINK_FORMAT,
        "access_estsize": math.ceil((size or 0) / 1024),
        "target_name": product.target or p.target,
        **_spatial(p.ra, p.dec, _fov_deg(p.instrument, p.arm)),
        "s_resolution": _diffraction_arcsec(p.em_max),
        "s_xel1": None,
        "s_xel2": None,
        "t_min": p.t_min,
        "t_max": p.t_max,
        "t_exptime": p.exptime,
        "t_resolution": None,
        "t_xel": None,
        **_spectral(p.em_min, p.em_max),
        "em_xel": None,
        "o_ucd": "phot.flux;instr.flux.contrast" if product.level == 2 else "phot.count",
        "pol_states": None,
        "pol_xel": None,
        "facility_name": "ESO-VLT-U3" if p.instrument in ("SPHERE", "NACO") else None,
        "instrument_name": f"{p.instrument}/{p.arm}" if p.arm else p.instrument,
    }


def source_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL (a Level 0 exposure's page at its source), else None:
    another scheme (``javascript:`` from a hostile VOTable) is never published as a link."""
    if url and url.strip().lower().startswith(("https://", "http://")) and not any(c.isspace() for c in url):
        return url.strip()
    return None


def granule_row(
    access: AccessContext,
    granule: Any,
    file: Any | None,
    publication: tuple[str | None, dt.datetime | None] | None = None,
) -> dict[str, Any]:
    """The ObsCore row of a granule (``granules`` row) of the file row ``file``; ``file`` None
    for a Level 0 observation log entry without a file (an ObsPortal exposure).

    ``publication``: the granule's (declared data rights, public date) when the caller has
    computed them (:meth:`AccessContext.granule_publication` otherwise). Conventions of OiDB for
    Level 0 (``../shared/reference/interferometry.md``): ``calib_level`` 0, ``obs_id`` the
    exposure id, ``access_url`` the exposure's page (``text/html``) when it is an http(s) URL,
    ``em_xel`` NULL for OiDB's ``nb_channels`` -1 (unknown); times MJD, wavelengths m.
    """
    rights, released = publication if publication is not None else access.granule_publication(granule.id)
    calib_level = granule.calib_level if granule.calib_level is not None else 2
    fov = INTERFEROMETRY_FOV_ARCSEC / 3600.0
    facility = granule.facility_name or "unknown"
    category = granule.dataproduct_category or "SCIENCE"
    level0 = calib_level == 0
    link = source_link(granule.access_url) if file is None else None
    if file is not None:
        name = file.path.rsplit("/", 1)[-1]
        obs_id = granule.obs_id or f"{name}:{granule.target_name}:{granule.instrument_name}"
    else:
        obs_id = granule.obs_id or f"granule-{granule.id}"
    channels = granule.nb_channels if granule.nb_channels is not None and granule.nb_channels >= 0 else None
    taken = granule.t_min if granule.t_min is not None else granule.t_max
    return {
        "hcdc_kind": "granule",
        "hcdc_key": granule.id,
        "hcdc_file_id": granule.file_id,
        "hcdc_product_id": None,
        "hcdc_dataset_id": file.dataset_id if file is not None else None,
        "hcdc_prog_id": granule.progid or (file.prog_id if file is not None else None),
        "hcdc_filter": None,
        "hcdc_product_type": f"{'obslog' if level0 else 'oifits'}:{category}".lower(),
        "hcdc_access_url": link,
        "hcdc_data_rights": rights if rights in ("secure", "proprietary") else None,
        "dataproduct_type": "visibility",
        "dataproduct_subtype": granule.dataproduct_category,
        "calib_level": calib_level,
        "obs_collection": granule.obs_collection or f"{facility} {'raw' if level0 else 'OIFITS'}",
        "obs_id": obs_id[:255],
        "obs_creation_date": (
            file.date_obs if file is not None else (datetime_of_mjd(taken) if taken is not None else None)
        ),
        "obs_release_date": released,
        "access_format": SOURCE_PAGE_FORMAT if link else DATALINK_FORMAT,
        "access_estsize": math.ceil(file.size / 1024) if file is not None else None,
        "target_name": granule.target_name,
        **_spatial(granule.s_ra, granule.s_dec, fov),
        "s_resolution": None,
        "s_xel1": None,
        "s_xel2": None,
        "t_min": granule.t_min,
        "t_max": granule.t_max,
        "t_exptime": granule.t_exptime,
        "t_resolution": None,
        "t_xel": None,
        "em_min": granule.em_min,
        "em_max": granule.em_max,
        "em_res_power": granule.em_res_power,
        "em_xel": channels,
        "o_ucd": None,  # OIFITS holds several observables (as OiDB)
        "pol_states": None,
        "pol_xel": None,
        "facility_name": granule.facility_name,
        "instrument_name": granule.instrument_name,
    }


def _publications(
    conn: Connection, access: AccessContext, granules: Sequence[Any]
) -> dict[int, tuple[str | None, dt.datetime | None]]:
    """(declared rights, public date) of each granule, by id, in one query for the collections
    (an ObsPortal import writes thousands at once); the dates are :mod:`hcdc.archive.access`'s."""
    names = sorted({g.obs_collection for g in granules if g.obs_collection is not None})
    collections = {c.name: c for c in conn.execute(select(OiCollection).where(OiCollection.name.in_(names)))}
    out: dict[int, tuple[str | None, dt.datetime | None]] = {}
    for g in granules:
        if g.obs_collection is None:  # R14: public with its file
            out[g.id] = (None, access.file_public_date(g.file_id) if g.file_id is not None else None)
        elif (c := collections.get(g.obs_collection)) is None:  # R9: an unregistered collection
            out[g.id] = (None, None)
        else:
            out[g.id] = (g.data_rights or c.data_rights, granule_public_date(g, c))
    return out


# --------------------------------------------------------------------------------------------
# keeping the table in sync


def _access(conn: Connection, policy: Policy) -> AccessContext:
    # release dates do not depend on who asks: the local operator's context reads the facts
    return AccessContext(conn, local_operator(), utcnow(), policy)


_BATCH = 500  # ids per IN (...) list


def _write(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if rows:
        conn.execute(insert(ObsCoreRow), list(rows))
    return len(rows)


def _sibling_files(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Current files, other than ``ids``, with a granule that may supersede or be superseded by a
    granule of any version of these files' paths: same target, INSNAME and night (collection and
    level are not compared: either may just have changed, by an assignment or a publication), not
    both Level 0."""
    versions = select(File.id).where(File.path.in_(select(File.path).where(File.id.in_(ids))))
    mine = aliased(GranuleRow)
    other = aliased(GranuleRow)
    query = (
        select(other.file_id)
        .distinct()
        .join(File, File.id == other.file_id)
        .join(
            mine,
            and_(
                mine.target_name == other.target_name,
                mine.instrument_name == other.instrument_name,
                mine.night_id == other.night_id,
            ),
        )
        .where(
            mine.file_id.in_(versions),
            File.is_current,
            other.file_id.not_in(ids),
            # Level 0 granules (a night's raw files) never supersede one another
            ~and_(func.coalesce(mine.calib_level, -1) == 0, func.coalesce(other.calib_level, -1) == 0),
        )
    )
    return set(conn.scalars(query))


def sync_file_rows(
    conn: Connection, file_ids: Iterable[int], policy: Policy = DEFAULT_POLICY, *, siblings: bool = True
) -> int:
    """Replace the ObsCore rows of these files (their own row and their granules' rows).

    Runs in the caller's transaction (ingest, assignment, validation, publication); superseded
    versions lose their rows, and so do granules superseded by a later reduction
    (:func:`~hcdc.archive.granules.superseded_clause`). With ``siblings``, the current files
    holding a granule of the same target, INSNAME and night are rewritten too: a new reduction
    supersedes theirs, a change of collection or level may supersede or restore them
    (:func:`rebuild_obscore`, which rewrites every file, does without). Returns the number of
    rows written.
    """
    ids = sorted(set(int(i) for i in file_ids))
    if not ids:
        return 0
    if siblings:
        ids = sorted(set(ids) | _sibling_files(conn, ids))
    access = _access(conn, policy)
    # these files' rows, and those of the versions they superseded (same path, not current)
    paths = select(File.path).where(File.id.in_(ids))
    superseded = select(File.id).where(File.path.in_(paths), ~File.is_current)
    conn.execute(delete(ObsCoreRow).where(ObsCoreRow.hcdc_file_id.in_(ids)))
    conn.execute(delete(ObsCoreRow).where(ObsCoreRow.hcdc_file_id.in_(superseded)))
    rows: list[dict[str, Any]] = []
    granules: dict[int, list[Any]] = {}  # every granule of a file; superseded ones get no row
    query = select(GranuleRow.__table__, superseded_clause().label("superseded_by_later")).where(
        GranuleRow.file_id.in_(ids)
    )
    for g in conn.execute(query):
        granules.setdefault(g.file_id, []).extend([] if g.superseded_by_later else [g])
    publications = _publications(conn, access, [g for gs in granules.values() for g in gs])
    for file in conn.execute(select(File).where(File.id.in_(ids))):
        if not file.is_current:
            continue
        if file.id in granules:  # published through its granules, not as a raw file
            rows.extend(granule_row(access, g, file, publications[g.id]) for g in granules[file.id])
        elif (row := file_row(conn, access, file)) is not None:
            rows.append(row)
    return _write(conn, rows)


def sync_granule_rows(conn: Connection, granule_ids: Iterable[int], policy: Policy = DEFAULT_POLICY) -> int:
    """Replace the ObsCore rows of these granules, in the caller's transaction (an ObsPortal
    import, a collection's change): those without a file get their own row; those of a file
    are rewritten with their file's rows (:func:`sync_file_rows`). Returns the rows written."""
    ids = sorted(set(int(i) for i in granule_ids))
    if not ids:
        return 0
    o = ObsCoreRow.__table__.c
    written = 0
    file_ids: set[int] = set()
    access = _access(conn, policy)
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        found = conn.execute(select(GranuleRow).where(GranuleRow.id.in_(chunk))).all()
        file_ids |= {g.file_id for g in found if g.file_id is not None}
        loose = [g for g in found if g.file_id is None]
        conn.execute(delete(ObsCoreRow).where(o.hcdc_kind == "granule", o.hcdc_key.in_(chunk)))
        publications = _publications(conn, access, loose)
        written += _write(conn, [granule_row(access, g, None, publications[g.id]) for g in loose])
    return written + sync_file_rows(conn, file_ids, policy)


def sync_collection_rows(conn: Connection, collection: str, policy: Policy = DEFAULT_POLICY) -> int:
    """Replace the ObsCore rows of every granule of ``collection`` (caller's transaction): after
    granules joined it (their collection, level and release date change)."""
    ids = conn.scalars(select(GranuleRow.id).where(GranuleRow.obs_collection == collection)).all()
    return sync_granule_rows(conn, ids, policy)


def sync_product_rows(conn: Connection, product_ids: Iterable[int], policy: Policy = DEFAULT_POLICY) -> int:
    """Replace the ObsCore rows of these products and drop those of versions they superseded.

    Runs in the caller's transaction (product registration). Returns the number of rows written.
    """
    ids = sorted(set(int(i) for i in product_ids))
    if not ids:
        return 0
    access = _access(conn, policy)
    lineages = select(Product.lineage).where(Product.id.in_(ids))
    stale = select(Product.id).where(Product.lineage.in_(lineages))
    conn.execute(delete(ObsCoreRow).where(ObsCoreRow.hcdc_product_id.in_(stale)))
    rows = []
    for product in conn.execute(select(Product).where(Product.id.in_(ids))):
        if (row := product_row(conn, access, product)) is not None:
            rows.append(row)
    return _write(conn, rows)


def refresh_release_dates(
    conn: Connection,
    *,
    product_ids: Iterable[int] = (),
    prog_id: str | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> int:
    """Rewrite ``obs_release_date`` of the stored rows whose release may have changed, in the
    caller's transaction: the rows of ``product_ids`` (a PI's release delay, or its removal) and
    every row of programme ``prog_id`` (a new proprietary period). Only that column changes; the
    rows of other versions are left alone. Returns the number of rows rewritten."""
    o = ObsCoreRow.__table__.c
    conditions = []
    ids = sorted({int(i) for i in product_ids})
    if ids:
        conditions.append(and_(o.hcdc_kind == "product", o.hcdc_product_id.in_(ids)))
    if prog_id is not None:  # a programme: its runs' rows too ("0104.C-0123(A)")
        conditions.append(programme_key_sql(o.hcdc_prog_id) == programme_key(prog_id))
    if not conditions:
        return 0
    access = _access(conn, policy)
    rows = conn.execute(
        select(o.id, o.hcdc_kind, o.hcdc_key, o.hcdc_file_id, o.hcdc_product_id).where(or_(*conditions))
    ).all()
    for row in rows:
        if row.hcdc_kind == "product":
            released = access.product_public_date(row.hcdc_product_id)
        elif row.hcdc_kind == "granule":  # its collection's rules, else with its file (R14)
            released = access.granule_publication(row.hcdc_key)[1]
        else:  # a raw file
            released = access.file_public_date(row.hcdc_file_id)
        conn.execute(update(ObsCoreRow).where(o.id == row.id).values(obs_release_date=released))
    return len(rows)


@dataclass
class RebuildSummary:
    files: int = 0
    granules: int = 0
    products: int = 0

    @property
    def total(self) -> int:
        return self.files + self.granules + self.products

    def as_dict(self) -> dict[str, int]:
        return {
            "files": self.files,
            "granules": self.granules,
            "products": self.products,
            "total": self.total,
        }


def rebuild_obscore(conn: Connection, policy: Policy = DEFAULT_POLICY, batch: int = 500) -> RebuildSummary:
    """Delete and rewrite every ObsCore row from the catalogue (caller's transaction)."""
    conn.execute(delete(ObsCoreRow))
    file_ids = list(
        conn.scalars(select(File.id).where(File.is_current, ~File.is_calibration).order_by(File.id))
    )
    for start in range(0, len(file_ids), batch):
        sync_file_rows(conn, file_ids[start : start + batch], policy, siblings=False)
    loose = list(
        conn.scalars(select(GranuleRow.id).where(GranuleRow.file_id.is_(None)).order_by(GranuleRow.id))
    )
    sync_granule_rows(conn, loose, policy)  # observation log entries without a file (ObsPortal L0)
    product_ids = list(
        conn.scalars(
            select(Product.id)
            .where(
                Product.is_current,
                Product.status == "done",
                Product.level.in_(list(CALIB_LEVEL_OF_PRODUCT_LEVEL)),
            )
            .order_by(Product.id)
        )
    )
    for start in range(0, len(product_ids), batch):
        sync_product_rows(conn, product_ids[start : start + batch], policy)
    counts = dict(
        conn.execute(select(ObsCoreRow.hcdc_kind, func.count()).group_by(ObsCoreRow.hcdc_kind)).all()
    )
    return RebuildSummary(counts.get("file", 0), counts.get("granule", 0), counts.get("product", 0))


# --------------------------------------------------------------------------------------------
# what a user sees


def did_prefix(authority: str) -> str:
    """``ivo://AUTHORITY/`` (checked by :func:`publisher_did`)."""
    return publisher_did(authority, "file", 0)[: -len("file?0")]


def datalink_url(base_url: str, did: str) -> str:
    """The DataLink URL of a publisher DID at the service ``base_url`` (no trailing slash)."""
    return f"{base_url.rstrip('/')}/datalink?ID={quote(did, safe='')}"


def published_select(
    user: Principal,
    now: dt.datetime,
    *,
    authority: str,
    base_url: str,
    policy: Policy = DEFAULT_POLICY,
) -> Select:
    """``ivoa.obscore`` as ``user`` sees it at ``now``: a SELECT of every published column.

    The rows are filtered by ``archive/access.py`` (the row's file or product must be visible);
    ``obs_publisher_did``, ``access_url`` and ``data_rights`` are computed here (see the module
    docstring). The TAP service substitutes this SELECT for every reference to ``ivoa.obscore``.
    """
    o = ObsCoreRow.__table__.c
    now = utc_naive(now)
    prefix = did_prefix(authority)
    did = literal(prefix) + o.hcdc_kind + literal("?") + func.cast(o.hcdc_key, String)
    quoted_prefix = quote(prefix, safe="")
    datalink = (
        literal(f"{base_url.rstrip('/')}/datalink?ID={quoted_prefix}")
        + o.hcdc_kind
        + literal("%3F")
        + func.cast(o.hcdc_key, String)
    )
    access_url = func.coalesce(o.hcdc_access_url, datalink)  # a Level 0 exposure's own page
    rights = case(
        (o.obs_release_date <= literal(now, DateTime), "public"),
        else_=func.coalesce(o.hcdc_data_rights, "proprietary"),
    )
    columns = []
    for spec in OBSCORE_COLUMNS:
        if spec.name == "obs_publisher_did":
            columns.append(did.label(spec.name))
        elif spec.name == "access_url":
            columns.append(access_url.label(spec.name))
        elif spec.name == "data_rights":
            columns.append(rights.label(spec.name))
        else:
            columns.append(o[spec.name].label(spec.name))
    granule = case((o.hcdc_kind == "granule", o.hcdc_key))  # NULL for files and products
    visible = visible_sources_clause(
        user, now, policy, file_id=o.hcdc_file_id, product_id=o.hcdc_product_id, granule_id=granule
    )
    return select(*columns).where(visible)


# --------------------------------------------------------------------------------------------
# column metadata (TAP_SCHEMA and VOTable FIELDs are generated from this)


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a published table, with its TAP 1.1 / VOTable metadata.

    ``datatype`` is the VOTable datatype (TAP 1.1 TAP_SCHEMA.columns.datatype), ``arraysize``
    ``*`` for variable-length strings; ``std`` marks the columns defined by the standard.
    """

    name: str
    datatype: str
    description: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    arraysize: str | None = None
    xtype: str | None = None
    principal: bool = False
    indexed: bool = False
    std: bool = True
    nullable: bool = True


def _c(name, datatype, ucd, utype, description, unit=None, **kw) -> ColumnSpec:  # noqa: ANN001
    arraysize = "*" if datatype == "char" else None
    return ColumnSpec(
        name, datatype, description, unit, ucd, f"obscore:{utype}" if utype else None, arraysize, **kw
    )


#: ``ivoa.obscore``: the 30 mandatory ObsCore 1.1 columns, optional standard ones, then hcdc's own
OBSCORE_COLUMNS: tuple[ColumnSpec, ...] = (
    _c(
        "dataproduct_type",
        "char",
        "meta.code.class",
        "ObsDataset.dataProductType",
        "Data product type: image, cube or visibility",
        principal=True,
    ),
    _c(
        "dataproduct_subtype",
        "char",
        "meta.code.class",
        "ObsDataset.dataProductSubtype",
        "hcdc's product type (level2-image, ...) or raw file class",
    ),
    _c(
        "calib_level",
        "short",
        "meta.code;obs.calib",
        "ObsDataset.calibLevel",
        "Calibration level: 0 raw, 2 Level 1 cube, 3 Level 2 product",
        principal=True,
        nullable=False,
    ),
    _c(
        "obs_collection",
        "char",
        "meta.id",
        "DataID.Collection",
        "Collection: instrument and level (e.g. 'SPHERE L2')",
        principal=True,
        nullable=False,
    ),
    _c(
        "obs_id",
        "char",
        "meta.id",
        "DataID.observationID",
        "Observation identifier (dataset key, product lineage or file name)",
        principal=True,
        nullable=False,
    ),
    _c(
        "obs_publisher_did",
        "char",
        "meta.ref.ivoid",
        "Curation.PublisherDID",
        "Publisher's IVOA identifier of the product (also its DataLink ID)",
        principal=True,
        indexed=True,
        nullable=False,
    ),
    _c(
        "access_url",
        "char",
        "meta.ref.url",
        "Access.Reference",
        "DataLink document of the product (a Level 0 exposure without a file: its page at its source)",
        principal=True,
    ),
    _c("access_format", "char", "meta.code.mime", "Access.Format", "MIME type of access_url"),
    _c(
        "access_estsize",
        "long",
        "phys.size;meta.file",
        "Access.Size",
        "Estimated size of the product's files",
        unit="kbyte",
    ),
    _c(
        "target_name",
        "char",
        "meta.id;src",
        "Target.Name",
        "Target name (as observed)",
        principal=True,
        indexed=True,
    ),
    _c(
        "s_ra",
        "double",
        "pos.eq.ra",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
        "Right ascension of the field centre (ICRS)",
        unit="deg",
        principal=True,
        indexed=True,
    ),
    _c(
        "s_dec",
        "double",
        "pos.eq.dec",
        "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
        "Declination of the field centre (ICRS)",
        unit="deg",
        principal=True,
        indexed=True,
    ),
    _c(
        "s_fov",
        "double",
        "phys.angSize;instr.fov",
        "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
        "Field of view (side of the square field)",
        unit="deg",
    ),
    _c(
        "s_region",
        "char",
        "pos.outline;obs.field",
        "Char.SpatialAxis.Coverage.Support.Area",
        "Field covered, an STC-S polygon (ICRS, degrees)",
        xtype="adql:REGION",
    ),
    _c(
        "s_resolution",
        "double",
        "pos.angResolution",
        "Char.SpatialAxis.Resolution.Refval.value",
        "Angular resolution (diffraction limit lambda/D at em_max)",
        unit="arcsec",
    ),
    _c("s_xel1", "long", "meta.number", "Char.SpatialAxis.numBins1", "Pixels along the first axis"),
    _c("s_xel2", "long", "meta.number", "Char.SpatialAxis.numBins2", "Pixels along the second axis"),
    _c(
        "t_min",
        "double",
        "time.start;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
        "Start of the observation (MJD, UTC)",
        unit="d",
        principal=True,
        indexed=True,
    ),
    _c(
        "t_max",
        "double",
        "time.end;obs.exposure",
        "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
        "End of the observation (MJD, UTC)",
        unit="d",
        principal=True,
    ),
    _c(
        "t_exptime",
        "double",
        "time.duration;obs.exposure",
        "Char.TimeAxis.Coverage.Support.Extent",
        "Total exposure time",
        unit="s",
    ),
    _c(
        "t_resolution",
        "double",
        "time.resolution",
        "Char.TimeAxis.Resolution.Refval.value",
        "Time resolution (detector integration time)",
        unit="s",
    ),
    _c("t_xel", "long", "meta.number", "Char.TimeAxis.numBins", "Number of time samples (frames)"),
    _c(
        "em_min",
        "double",
        "em.wl;stat.min",
        "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
        "Shortest wavelength (vacuum)",
        unit="m",
        principal=True,
    ),
    _c(
        "em_max",
        "double",
        "em.wl;stat.max",
        "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
        "Longest wavelength (vacuum)",
        unit="m",
        principal=True,
    ),
    _c(
        "em_res_power",
        "double",
        "spect.resolution",
        "Char.SpectralAxis.Resolution.ResolPower.refVal",
        "Spectral resolving power lambda/delta lambda",
    ),
    _c("em_xel", "long", "meta.number", "Char.SpectralAxis.numBins", "Number of spectral channels"),
    _c("o_ucd", "char", "meta.ucd", "Char.ObservableAxis.ucd", "UCD of the observable"),
    _c(
        "pol_states",
        "char",
        "meta.code;phys.polarization",
        "Char.PolarizationAxis.stateList",
        "Polarization states",
    ),
    _c("pol_xel", "long", "meta.number", "Char.PolarizationAxis.numBins", "Number of polarization samples"),
    _c(
        "facility_name",
        "char",
        "meta.id;instr.tel",
        "Provenance.ObsConfig.Facility.name",
        "Telescope or interferometer",
        principal=True,
    ),
    _c(
        "instrument_name",
        "char",
        "meta.id;instr",
        "Provenance.ObsConfig.Instrument.name",
        "Instrument (and arm or instrument mode)",
        principal=True,
    ),
    _c(
        "obs_creation_date",
        "char",
        "time;meta.dataset",
        "DataID.Date",
        "When the data were taken or the product made (UTC)",
        xtype="timestamp",
    ),
    _c(
        "obs_release_date",
        "char",
        "time.release",
        "Curation.releaseDate",
        "When the product is (or was) public by the access rules (UTC); empty: not by the clock",
        xtype="timestamp",
    ),
    _c(
        "data_rights",
        "char",
        "meta.code",
        "Curation.Rights",
        "public once obs_release_date is past, else proprietary (a granule: its collection's "
        "secure or proprietary rights, as OiDB)",
    ),
    ColumnSpec(
        "hcdc_prog_id",
        "char",
        "ESO programme id of the data",
        ucd="meta.id;obs.proposal",
        arraysize="*",
        std=False,
    ),
    ColumnSpec(
        "hcdc_filter",
        "char",
        "Filter or filter combination",
        ucd="meta.id;instr.filter",
        arraysize="*",
        std=False,
    ),
    ColumnSpec(
        "hcdc_product_type",
        "char",
        "hcdc product type (raw:<type>, level2-image, oifits:...)",
        ucd="meta.code.class",
        arraysize="*",
        std=False,
    ),
    ColumnSpec("hcdc_dataset_id", "int", "hcdc dataset (observation) id", ucd="meta.id", std=False),
)

OBSCORE_COLUMN_NAMES = tuple(c.name for c in OBSCORE_COLUMNS)

__all__ = [
    "CALIB_LEVEL_OF_PRODUCT_LEVEL",
    "DATALINK_FORMAT",
    "OBSCORE_COLUMNS",
    "SOURCE_PAGE_FORMAT",
    "OBSCORE_COLUMN_NAMES",
    "ColumnSpec",
    "ObsCoreRow",
    "RebuildSummary",
    "datalink_url",
    "did_prefix",
    "file_row",
    "granule_row",
    "product_row",
    "published_select",
    "rebuild_obscore",
    "refresh_release_dates",
    "source_link",
    "square_region",
    "sync_collection_rows",
    "sync_file_rows",
    "sync_granule_rows",
    "sync_product_rows",
]
