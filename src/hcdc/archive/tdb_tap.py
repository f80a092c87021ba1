"""The Target Data Base in TAP: ``tdb.targets``, ``tdb.observations``, ``tdb.reductions``,
``tdb.detections`` and ``tdb.candidates``.

The published columns are generated from the SQLAlchemy models (:mod:`hcdc.archive.tdb_models`):
each column's VOTable datatype comes from its SQL type, ``indexed`` from the model's primary key
and indexes, and the foreign keys (TAP_SCHEMA.keys) from the models' foreign keys between the
published tables. What is written here is what a model cannot say: the description, unit and
UCD of each column, and which columns are deliberately not published (JSON blobs, bookkeeping
times) — a column of a model that is neither published nor withheld is an error at import, so
a new column cannot be forgotten silently.

Rights (rule R15, ``archive/access.py``): each table is the caller's rights-filtered SELECT
(:meth:`TdbTable.select_for`), substituted for every reference to it exactly as
``ivoa.obscore`` is. Targets are public; observations, reductions, detections and candidates
pass :func:`~hcdc.archive.access.visible_tdb_observations_clause`, ``..._reductions_clause``,
``..._detections_clause`` and ``..._candidates_clause``.

Units: angles of the sky in deg, offsets and separations in mas, proper motions mas/yr,
parallax mas, radial velocity km/s, magnitudes mag, wavelengths um, ages Myr, epochs JD (d).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Boolean, DateTime, Float, Integer, Select, String, Text, select
from sqlalchemy.sql.elements import ColumnElement

from hcdc.archive.access import (
    DEFAULT_POLICY,
    Policy,
    Principal,
    visible_tdb_candidates_clause,
    visible_tdb_detections_clause,
    visible_tdb_observations_clause,
    visible_tdb_reductions_clause,
)
from hcdc.archive.obscore import ColumnSpec
from hcdc.archive.tap_tables import TableSpec
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction, Target

TDB_SCHEMA = "tdb"

#: column -> (description, unit, UCD); one dict per model, in publication order
Meta = dict[str, tuple[str, str | None, str | None]]

_TARGETS: Meta = {
    "id": ("target identifier (key of this table)", None, "meta.id;meta.main"),
    "name": ("display name of the target", None, "meta.id"),
    "ra_deg": ("right ascension (ICRS)", "deg", "pos.eq.ra;meta.main"),
    "dec_deg": ("declination (ICRS)", "deg", "pos.eq.dec;meta.main"),
    "pmra_masyr": (
        "proper motion in right ascension, mu_alpha* (includes cos dec)",
        "mas/yr",
        "pos.pm;pos.eq.ra",
    ),
    "pmdec_masyr": ("proper motion in declination", "mas/yr", "pos.pm;pos.eq.dec"),
    "parallax_mas": ("parallax", "mas", "pos.parallax"),
    "parallax_err_mas": ("uncertainty of the parallax", "mas", "stat.error;pos.parallax"),
    "rv_kms": ("radial velocity", "km/s", "spect.dopplerVeloc.opt"),
    "mag_b": ("B magnitude (as SIMBAD gives it)", "mag", "phot.mag;em.opt.B"),
    "mag_v": ("V magnitude", "mag", "phot.mag;em.opt.V"),
    "mag_r": ("R magnitude", "mag", "phot.mag;em.opt.R"),
    "mag_i": ("I magnitude", "mag", "phot.mag;em.opt.I"),
    "mag_j": ("J magnitude", "mag", "phot.mag;em.IR.J"),
    "mag_h": ("H magnitude", "mag", "phot.mag;em.IR.H"),
    "mag_k": ("K magnitude", "mag", "phot.mag;em.IR.K"),
    "spectral_type": ("spectral type", None, "src.spType"),
    "age_myr": ("age", "Myr", "time.age"),
    "age_err_myr": ("uncertainty of the age", "Myr", "stat.error;time.age"),
    "simbad_id": ("SIMBAD main identifier", None, "meta.id.cross"),
    "resolved": (
        "how the name was resolved: simbad, dictionary, import, manual or unresolved",
        None,
        "meta.code",
    ),
}
_OBSERVATIONS: Meta = {
    "id": ("observation identifier (key of this table)", None, "meta.id;meta.main"),
    "uid": ("unique identifier kept through export and import", None, "meta.id"),
    "target_id": ("the observed target (tdb.targets.id)", None, "meta.id.assoc"),
    "dataset_id": ("the catalogue's dataset of the observation, when hcdc holds it", None, "meta.id.assoc"),
    "date_jd": ("Julian date (UTC) of the start of the observation", "d", "time.epoch;obs"),
    "instrument": ("instrument", None, "instr"),
    "telescope": ("telescope", None, "instr.tel"),
    "survey": ("survey (access group) the observation belongs to", None, "meta.id;obs.proposal"),
    "filter": ("filter", None, "instr.filter"),
    "true_north_deg": ("true north correction", "deg", "pos.posAng;instr.setup"),
    "true_north_err_deg": ("uncertainty of the true north correction", "deg", "stat.error;pos.posAng"),
    "parallactic_angle_deg": ("parallactic angle (middle of the observation, or start)", "deg", "pos.posAng"),
    "pixel_scale_mas": ("pixel scale", "mas/pix", "instr.scale"),
    "pixel_scale_err_mas": ("uncertainty of the pixel scale", "mas/pix", "stat.error;instr.scale"),
    "setup": ("coronagraph, mode, neutral density", None, "instr.setup"),
    "prog_id": ("ESO programme identifier", None, "meta.id;obs.proposal"),
    "release_date": ("imported observations: public from this date", None, "time.release"),
    "origin": ("level2 (from a validated Level 2 product) or import", None, "meta.code"),
}
_REDUCTIONS: Meta = {
    "id": ("reduction identifier (key of this table)", None, "meta.id;meta.main"),
    "uid": ("unique identifier kept through export and import", None, "meta.id"),
    "observation_id": ("the reduced observation (tdb.observations.id)", None, "meta.id.assoc"),
    "product_id": ("the Level 2 product of the reduction, when hcdc made it", None, "meta.id.assoc"),
    "validated": ("true when the reduction's product was validated", None, "meta.code.qual"),
    "software": ("reduction software", None, "meta.software"),
    "software_version": ("version of the reduction software", None, "meta.version"),
    "algorithm": ("post-processing algorithm", None, "meta.code"),
    "date": ("when the reduction was made (UTC)", None, "time.processing"),
    "location": ("where the reduction is kept: data centre and product path, or a URL", None, "meta.ref.url"),
}
_DETECTIONS: Meta = {
    "id": ("detection identifier (key of this table)", None, "meta.id;meta.main"),
    "uid": ("unique identifier kept through export and import", None, "meta.id"),
    "reduction_id": ("the reduction with the detection (tdb.reductions.id)", None, "meta.id.assoc"),
    "candidate_id": ("the candidate the detection belongs to (tdb.candidates.id)", None, "meta.id.assoc"),
    "wavelength_um": ("wavelength of the measurement", "um", "em.wl"),
    "filter": ("filter of the measurement", None, "instr.filter"),
    "magnitude": ("apparent magnitude in the filter", "mag", "phot.mag"),
    "magnitude_err": ("uncertainty of the magnitude", "mag", "stat.error;phot.mag"),
    "contrast": ("flux ratio to the star", None, "phot.flux;arith.ratio"),
    "contrast_err": ("uncertainty of the contrast", None, "stat.error;phot.flux;arith.ratio"),
    "snr": ("signal-to-noise ratio of the detection", None, "stat.snr"),
    "dra_mas": ("offset from the star in right ascension (east positive)", "mas", "pos.eq.ra;arith.diff"),
    "dra_err_mas": ("uncertainty of the RA offset", "mas", "stat.error;pos.eq.ra;arith.diff"),
    "ddec_mas": ("offset from the star in declination (north positive)", "mas", "pos.eq.dec;arith.diff"),
    "ddec_err_mas": ("uncertainty of the Dec offset", "mas", "stat.error;pos.eq.dec;arith.diff"),
    "separation_mas": ("angular separation from the star", "mas", "pos.angDistance"),
    "separation_err_mas": ("uncertainty of the separation", "mas", "stat.error;pos.angDistance"),
    "pa_deg": ("position angle (east of north)", "deg", "pos.posAng"),
    "pa_err_deg": ("uncertainty of the position angle", "deg", "stat.error;pos.posAng"),
}
_CANDIDATES: Meta = {
    "id": ("candidate identifier (key of this table)", None, "meta.id;meta.main"),
    "target_id": ("the host target (tdb.targets.id)", None, "meta.id.assoc"),
    "label": ("label of the candidate (cc1, b, ...)", None, "meta.id"),
    "status": ("verdict of the motion test: undetermined, bound or background", None, "meta.code.class"),
    "grouped_by": ("who grouped the detections: auto, admin or import", None, "meta.code"),
    "updated_at": ("when the candidate (or its verdict) last changed (UTC)", None, "time.processing"),
}
#: columns of the models that are not published, and why
WITHHELD = {
    "tdb_targets": {
        "sources": "JSON provenance of each value",
        "created_at": "bookkeeping",
        "updated_at": "bookkeeping",
    },
    "tdb_observations": {"extra": "JSON of imported extras", "created_at": "bookkeeping"},
    "tdb_reductions": {
        "detection_limits": "JSON arrays (contrast curve); served by DataLink",
        "extra": "JSON of imported extras",
        "created_at": "bookkeeping",
    },
    "tdb_detections": {"extra": "JSON of imported extras"},
    "tdb_candidates": {"statistic": "JSON of the motion test", "created_at": "bookkeeping"},
}


#: ADQL 2.1 reserved words (§2.1.2, the SQL-92 ones included) that a column of ours could be
#: named: published as delimited identifiers (``"date"``), as TAP 1.1 asks
ADQL_RESERVED = frozenset(
    """ABS ACOS AREA ASIN ATAN ATAN2 BOX CEILING CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS COS
    COT DEGREES DISTANCE EXP FLOOR INTERSECTS LOG LOG10 MOD PI POINT POLYGON POWER RADIANS REGION
    RAND ROUND SIN SQRT TAN TOP TRUNCATE ABSOLUTE ACTION ALL ALLOCATE ALTER AND ANY ARE AS ASC
    ASSERTION AT AUTHORIZATION AVG BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST
    CATALOG CHAR CHARACTER CHAR_LENGTH CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN
    COMMIT CONNECT CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE
    CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE
    DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT
    DISTINCT DOMAIN DOUBLE DROP ELSE END END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL
    EXTRACT FALSE FETCH FIRST FLOAT FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING
    HOUR IDENTITY IMMEDIATE IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER
    INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOWER
    MATCH MAX MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF NUMERIC
    OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION PRECISION
    PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT
    REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER SET SIZE
    SMALLINT SOME SPACE SQL SQLCODE SQLERROR SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN
    TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM
    TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW WHEN
    WHENEVER WHERE WITH WORK WRITE YEAR ZONE""".split()
)


def adql_name(column: str) -> str:
    """The column's name in ADQL: delimited (``"date"``) when it is a reserved word."""
    return f'"{column}"' if column.upper() in ADQL_RESERVED else column


def _votable_type(sql_type: object) -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of a column's SQL type."""
    if isinstance(sql_type, Boolean):
        return "boolean", None, None
    if isinstance(sql_type, Integer):
        return "long", None, None
    if isinstance(sql_type, Float):
        return "double", None, None
    if isinstance(sql_type, DateTime):
        return "char", "*", "timestamp"
    if isinstance(sql_type, String | Text):
        return "char", "*", None
    raise TypeError(f"no VOTable datatype for SQL type {sql_type!r}")


@dataclass(frozen=True)
class TdbTable:
    """A published TDB table: its TAP metadata, model and R15 visibility clause (None: public)."""

    spec: TableSpec
    model: type
    visible: Callable[[Principal, dt.datetime, Policy], ColumnElement[bool]] | None

    def select_for(self, user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY) -> Select:
        """The rows ``user`` may see at ``now``, with the published columns in order."""
        table = self.model.__table__
        query = select(*(table.c[c.name.strip('"')] for c in self.spec.columns))
        return query if self.visible is None else query.where(self.visible(user, now, policy))


def _indexed(table) -> set[str]:  # noqa: ANN001 - a SQLAlchemy Table
    names = {c.name for c in table.primary_key.columns}
    for index in table.indexes:
        names.add(next(iter(index.columns)).name)  # the leading column is searchable
    for constraint in table.constraints:
        columns = list(getattr(constraint, "columns", []))
        if columns and type(constraint).__name__ == "UniqueConstraint":
            names.add(columns[0].name)
    return names


def _publish(model: type, name: str, description: str, meta: Meta, visible) -> TdbTable:  # noqa: ANN001
    table = model.__table__
    columns = {c.name: c for c in table.columns}
    unknown = set(meta) - set(columns)
    unaccounted = set(columns) - set(meta) - set(WITHHELD[table.name])
    if unknown or unaccounted:
        raise RuntimeError(
            f"TAP publication of {table.name} is out of date: unknown {sorted(unknown)}, "
            f"neither published nor withheld {sorted(unaccounted)}"
        )
    indexed = _indexed(table)
    specs = []
    for column_name, (text, unit, ucd) in meta.items():
        datatype, arraysize, xtype = _votable_type(columns[column_name].type)
        specs.append(
            ColumnSpec(
                adql_name(column_name),
                datatype,
                text,
                unit=unit,
                ucd=ucd,
                arraysize=arraysize,
                xtype=xtype,
                principal=True,
                indexed=column_name in indexed,
                std=False,
                nullable=bool(columns[column_name].nullable),
            )
        )
    keys = []
    for column_name in meta:
        for fk in columns[column_name].foreign_keys:
            target = _PUBLISHED_NAMES.get(fk.column.table.name)
            if target is not None:
                keys.append((f"{name}_{column_name}", f"{TDB_SCHEMA}.{target}", column_name, fk.column.name))
    spec = TableSpec(TDB_SCHEMA, name, description, tuple(specs), foreign_keys=tuple(keys))
    return TdbTable(spec, model, visible)


_PUBLISHED_NAMES = {
    "tdb_targets": "targets",
    "tdb_observations": "observations",
    "tdb_reductions": "reductions",
    "tdb_detections": "detections",
    "tdb_candidates": "candidates",
}

TDB_TABLES: tuple[TdbTable, ...] = (
    _publish(Target, "targets", "Targets of the Target Data Base (public: rule R15)", _TARGETS, None),
    _publish(
        Observation,
        "observations",
        "Observations of targets (rows the caller may see: rule R15)",
        _OBSERVATIONS,
        visible_tdb_observations_clause,
    ),
    _publish(
        Reduction,
        "reductions",
        "Reductions of observations (rows the caller may see: rule R15)",
        _REDUCTIONS,
        visible_tdb_reductions_clause,
    ),
    _publish(
        Detection,
        "detections",
        "Companion detections of reductions, offsets from the star (rows the caller may see: rule R15)",
        _DETECTIONS,
        visible_tdb_detections_clause,
    ),
    _publish(
        Candidate,
        "candidates",
        "Companion candidates: detections of one object at several epochs, with the bound/background "
        "verdict (seen with one of their detections: rule R15)",
        _CANDIDATES,
        visible_tdb_candidates_clause,
    ),
)

__all__ = ["ADQL_RESERVED", "TDB_SCHEMA", "TDB_TABLES", "WITHHELD", "TdbTable", "adql_name"]
