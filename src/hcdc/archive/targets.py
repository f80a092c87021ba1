"""Targets of the Target Data Base: names, aliases, resolution (dictionary, cache, SIMBAD).

Names. ESO OBJECT keywords spell one star many ways ("51Eri", "51 ERI", "HD 29391",
"HD_29391"); :func:`normalize_name` maps them to one key (upper case, no spaces or underscores,
SIMBAD's object-type prefixes ``*``, ``V*``, ``NAME`` dropped, Greek letters written out or as
symbols turned into SIMBAD's three-letter abbreviations: "beta Pic" = "bet Pic" = "β Pic"). Each
target's names are rows of ``tdb_target_aliases``, unique by that key.

Resolution (:func:`resolve`), in order, stopping at the first that knows the name:

1. the aliases of the targets already in the catalogue;
2. the internal dictionary (names SIMBAD does not know, added by admins with
   :func:`add_dictionary_name`, optionally with values);
3. the SIMBAD cache (every answer SIMBAD gave, including "unknown");
4. SIMBAD itself (TAP, :mod:`hcdc.archive.simbad`), unless ``offline``; its answer is cached.

A new target gets SIMBAD's astrometry, photometry and spectral type, each with its source; its
SIMBAD identifiers become aliases, so later files named any of them link to it offline.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hcdc.archive.models import utcnow
from hcdc.archive.simbad import DEFAULT_SIMBAD_TAP_URL, SimbadAnswer, SimbadError, query_simbad
from hcdc.archive.tdb_models import (
    NameDictionaryEntry,
    SimbadCacheEntry,
    Target,
    TargetAlias,
    TargetLink,
)

#: target columns that hold values (each may have a source in ``Target.sources``)
VALUE_FIELDS = (
    "ra_deg",
    "dec_deg",
    "pmra_masyr",
    "pmdec_masyr",
    "parallax_mas",
    "parallax_err_mas",
    "rv_kms",
    "mag_b",
    "mag_v",
    "mag_r",
    "mag_i",
    "mag_j",
    "mag_h",
    "mag_k",
    "spectral_type",
    "age_myr",
    "age_err_myr",
)

_GREEK = {
    "alpha": "alf", "beta": "bet", "gamma": "gam", "delta": "del", "epsilon": "eps", "zeta": "zet",
    "eta": "eta", "theta": "tet", "iota": "iot", "kappa": "kap", "lambda": "lam", "mu": "mu",
    "nu": "nu", "xi": "ksi", "omicron": "omi", "pi": "pi", "rho": "rho", "sigma": "sig", "tau": "tau",
    "upsilon": "ups", "phi": "phi", "chi": "chi", "psi": "psi", "omega": "ome",
}  # fmt: skip
# object-type prefixes SIMBAD puts before names ("* bet Pic", "V* alf UMi", "NAME Polaris")
_PREFIX = re.compile(r"^(?:NAME|V\*|\*\*|\*)\s+", re.IGNORECASE)


class TargetError(ValueError):
    """A target name cannot be resolved, or a target operation is refused (the message says why)."""


def simbad_endpoint(explicit: str | None = None) -> str:
    """The SIMBAD TAP URL: ``explicit``, else ``HCDC_SIMBAD_TAP_URL``, else CDS's service."""
    return explicit or os.environ.get("HCDC_SIMBAD_TAP_URL") or DEFAULT_SIMBAD_TAP_URL


def _greek_word(match: re.Match[str]) -> str:
    return _GREEK[match.group(0).lower()]


def normalize_name(name: str) -> str:
    """The key under which a target name is looked up ("51 Eri", "51ERI" -> ``"51ERI"``)."""
    text = unicodedata.normalize("NFKC", name or "").strip()
    # Greek symbols -> their names ("β" -> "beta"), then names -> SIMBAD abbreviations
    text = "".join(
        unicodedata.name(ch, "").split()[-1].lower()
        if "GREEK SMALL LETTER" in unicodedata.name(ch, "")
        else ch
        for ch in text
    )
    text = _PREFIX.sub("", text.replace("_", " "))
    text = re.sub(
        r"(?<![a-z])(" + "|".join(sorted(_GREEK, key=len, reverse=True)) + r")(?![a-z])",
        _greek_word,
        text,
        flags=re.I,
    )
    return re.sub(r"\s+", "", text).upper()


# --------------------------------------------------------------------------------------------
# lookup and creation


def find_target(conn: Connection, name: str) -> int | None:
    """Id of the target one of whose names normalises like ``name``, else None (no network)."""
    return conn.scalar(select(TargetAlias.target_id).where(TargetAlias.normalized == normalize_name(name)))


def add_aliases(
    conn: Connection, target_id: int, names: Iterable[str], origin: str, merge_unresolved: bool = False
) -> list[str]:
    """Give ``target_id`` the ``names`` it does not have yet; returns the names added.

    A name that belongs to another target raises :class:`TargetError`, unless ``merge_unresolved``
    and that target is unresolved (made at ingest from an OBJECT name SIMBAD later showed to be
    another name of this star): it is then merged into ``target_id``.
    """
    added = []
    for name in names:
        name = re.sub(r"\s+", " ", name).strip()
        key = normalize_name(name)
        if not key:
            continue
        owner = conn.scalar(select(TargetAlias.target_id).where(TargetAlias.normalized == key))
        if owner == target_id:
            continue
        if owner is not None and merge_unresolved and _is_unresolved(conn, owner):
            merge_targets(conn, target_id, owner)
            continue
        if owner is not None:
            raise TargetError(f"the name {name!r} already belongs to target {owner}")
        conn.execute(
            insert(TargetAlias).values(target_id=target_id, name=name, normalized=key, origin=origin)
        )
        added.append(name)
    return added


def _is_unresolved(conn: Connection, target_id: int) -> bool:
    return conn.scalar(select(Target.resolved).where(Target.id == target_id)) == "unresolved"


def merge_targets(conn: Connection, keep: int, other: int) -> None:
    """Move everything of target ``other`` (names, links, observations, candidates) to ``keep``."""
    from hcdc.archive.tdb_models import Candidate, Observation

    if keep == other:
        return
    for table in (TargetAlias, TargetLink, Observation, Candidate):
        conn.execute(update(table).where(table.target_id == other).values(target_id=keep))
    conn.execute(delete(Target).where(Target.id == other))


def create_target(
    conn: Connection,
    name: str,
    values: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
    resolved: str = "manual",
    aliases: Iterable[str] = (),
    alias_origin: str = "user",
    simbad_id: str | None = None,
) -> int:
    """Insert a target named ``name`` with ``values`` (target columns) and their ``sources``."""
    values = {k: v for k, v in (values or {}).items() if k in VALUE_FIELDS}
    if find_target(conn, name) is not None:
        raise TargetError(f"a target called {name!r} exists already")
    now = utcnow()
    target_id = conn.execute(
        insert(Target)
        .values(
            name=name,
            sources={k: v for k, v in (sources or {}).items() if k in values},
            resolved=resolved,
            simbad_id=simbad_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        .returning(Target.id)
    ).scalar_one()
    add_aliases(conn, target_id, [name], alias_origin)
    add_aliases(conn, target_id, [a for a in aliases if find_target(conn, a) is None], alias_origin)
    return target_id


def set_values(conn: Connection, target_id: int, values: dict[str, Any], source: str) -> None:
    """Set target values (e.g. an age from a paper) with ``source`` as the source of each."""
    unknown = sorted(set(values) - set(VALUE_FIELDS))
    if unknown:
        raise TargetError(f"unknown target field(s) {', '.join(unknown)}; known: {', '.join(VALUE_FIELDS)}")
    row = conn.execute(select(Target.sources).where(Target.id == target_id)).first()
    if row is None:
        raise TargetError(f"no target {target_id}")
    sources = dict(row.sources or {})
    sources.update({k: source for k in values})
    conn.execute(
        update(Target).where(Target.id == target_id).values(sources=sources, updated_at=utcnow(), **values)
    )


# --------------------------------------------------------------------------------------------
# the internal dictionary and the SIMBAD cache


def add_dictionary_name(
    conn: Connection,
    name: str,
    canonical: str | None = None,
    values: dict[str, Any] | None = None,
    added_by: str = "admin",
    note: str | None = None,
) -> None:
    """Add (or replace) ``name`` in the internal dictionary, meaning ``canonical`` (default: itself).

    Rights (only admins edit the dictionary) are checked by the caller with
    :meth:`hcdc.archive.access.AccessContext.can_manage`.
    """
    values = values or {}
    unknown = sorted(set(values) - set(VALUE_FIELDS))
    if unknown:
        raise TargetError(f"unknown target field(s) {', '.join(unknown)} for {name!r}")
    key = normalize_name(name)
    if not key:
        raise TargetError("an empty name cannot go in the dictionary")
    conn.execute(delete(NameDictionaryEntry).where(NameDictionaryEntry.normalized == key))
    conn.execute(
        insert(NameDictionaryEntry).values(
            name=name,
            normalized=key,
            canonical=canonical or name,
            values=values,
            added_by=added_by,
            note=note,
        )
    )


def list_dictionary(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(NameDictionaryEntry).order_by(NameDictionaryEntry.name))
    return [
        {"name": r.name, "canonical": r.canonical, "values": r.values, "note": r.note, "added_by": r.added_by}
        for r in rows
    ]


def _dictionary(conn: Connection, name: str) -> Any:
    return conn.execute(
        select(NameDictionaryEntry).where(NameDictionaryEntry.normalized == normalize_name(name))
    ).first()


def cached_answer(conn: Connection, name: str) -> tuple[bool, SimbadAnswer | None]:
    """``(known, answer)``: whether SIMBAD was asked about ``name`` already, and what it said."""
    row = conn.execute(
        select(SimbadCacheEntry.answer).where(SimbadCacheEntry.normalized == normalize_name(name))
    ).first()
    if row is None:
        return False, None
    return True, None if row.answer is None else SimbadAnswer.from_dict(row.answer)


def _cache(conn: Connection, name: str, answer: SimbadAnswer | None, endpoint: str) -> None:
    key = normalize_name(name)
    conn.execute(delete(SimbadCacheEntry).where(SimbadCacheEntry.normalized == key))
    conn.execute(
        insert(SimbadCacheEntry).values(
            normalized=key, query=name, answer=None if answer is None else answer.as_dict(), endpoint=endpoint
        )
    )


def ask_simbad(
    conn: Connection, name: str, endpoint: str | None = None, offline: bool = False, refresh: bool = False
) -> SimbadAnswer | None:
    """SIMBAD's answer about ``name``: from the cache, else (not ``offline``) from SIMBAD, cached."""
    if not refresh:
        known, answer = cached_answer(conn, name)
        if known or offline:
            return answer
    elif offline:
        raise TargetError("--refresh needs SIMBAD: not possible offline")
    url = simbad_endpoint(endpoint)
    answer = query_simbad(name, url)
    _cache(conn, name, answer, url)
    return answer


# --------------------------------------------------------------------------------------------
# resolution


def _target_from_answer(conn: Connection, name: str, answer: SimbadAnswer) -> int:
    """The target SIMBAD's ``answer`` describes: an existing one sharing a name, or a new one."""
    for ident in [answer.main_id or name, *answer.identifiers]:
        existing = find_target(conn, ident)
        if existing is not None:
            fill_from_simbad(conn, existing, answer)
            add_aliases(conn, existing, [name, *answer.identifiers], "simbad", merge_unresolved=True)
            return existing
    return create_target(
        conn,
        answer.main_id or name,
        answer.values,
        answer.sources,
        resolved="simbad",
        aliases=[name, *answer.identifiers],
        alias_origin="simbad",
        simbad_id=answer.main_id,
    )


def _fill_missing(
    conn: Connection, target_id: int, values: dict[str, Any], source: str, resolved: str
) -> None:
    """Give a target the ``values`` it lacks (from ``source``); an unresolved one becomes ``resolved``."""
    row = conn.execute(select(Target).where(Target.id == target_id)).one()
    missing = {k: v for k, v in values.items() if k in VALUE_FIELDS and getattr(row, k) is None}
    if missing:
        set_values(conn, target_id, missing, source)
    if row.resolved == "unresolved":
        conn.execute(update(Target).where(Target.id == target_id).values(resolved=resolved))


def fill_from_simbad(conn: Connection, target_id: int, answer: SimbadAnswer) -> list[str]:
    """Fill the values a target lacks from SIMBAD's ``answer``; returns the fields filled."""
    row = conn.execute(select(Target).where(Target.id == target_id)).first()
    missing = {k: v for k, v in answer.values.items() if k in VALUE_FIELDS and getattr(row, k) is None}
    if missing:
        sources = dict(row.sources or {})
        sources.update({k: answer.sources.get(k, "SIMBAD") for k in missing})
        conn.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(sources=sources, updated_at=utcnow(), **missing)
        )
    changes: dict[str, Any] = {}
    if row.simbad_id is None and answer.main_id:
        changes["simbad_id"] = answer.main_id
    if row.resolved == "unresolved":
        changes["resolved"] = "simbad"
    if changes:
        conn.execute(update(Target).where(Target.id == target_id).values(**changes))
    return sorted(missing)


def complete_target(
    conn: Connection,
    target_id: int,
    endpoint: str | None = None,
    offline: bool = False,
    refresh: bool = False,
) -> list[str]:
    """Ask SIMBAD (or its cache) about an existing target's names, first that it knows wins; fill
    the values it lacks and add SIMBAD's identifiers (merging unresolved targets that turn out to
    be the same star). Returns the fields filled; :class:`TargetError` when no name is known."""
    names = [
        r.name
        for r in conn.execute(
            select(TargetAlias.name).where(TargetAlias.target_id == target_id).order_by(TargetAlias.id)
        )
    ]
    if not names:
        raise TargetError(f"no target {target_id}")
    for name in names:
        answer = ask_simbad(conn, name, endpoint, offline=offline, refresh=refresh)
        if answer is not None:
            filled = fill_from_simbad(conn, target_id, answer)
            add_aliases(conn, target_id, answer.identifiers, "simbad", merge_unresolved=True)
            return filled
    raise TargetError(f"SIMBAD knows none of the names of target {target_id} ({', '.join(names)})")


def resolve(
    conn: Connection,
    name: str,
    endpoint: str | None = None,
    offline: bool = False,
    create: bool = True,
) -> int:
    """The id of the target called ``name``, created and filled from SIMBAD when new.

    Order: aliases, internal dictionary, SIMBAD cache, SIMBAD (skipped when ``offline``). Raises
    :class:`TargetError` when no source knows the name (or, ``create`` false, when it is new), and
    :class:`~hcdc.archive.simbad.SimbadError` when SIMBAD had to be asked and could not answer.
    """
    if not normalize_name(name):
        raise TargetError("an empty target name cannot be resolved")
    existing = find_target(conn, name)
    if existing is not None:
        return existing
    entry = _dictionary(conn, name)
    if entry is not None:
        target_id = find_target(conn, entry.canonical)
        if target_id is None:
            if not create:
                raise TargetError(f"{name!r} (dictionary: {entry.canonical!r}) is not a target yet")
            values = dict(entry.values or {})
            target_id = create_target(
                conn,
                entry.canonical,
                values,
                {k: f"dictionary ({entry.added_by})" for k in values},
                resolved="dictionary",
                alias_origin="dictionary",
            )
        else:
            _fill_missing(
                conn, target_id, dict(entry.values or {}), f"dictionary ({entry.added_by})", "dictionary"
            )
        add_aliases(conn, target_id, [name], "dictionary")
        return target_id
    answer = ask_simbad(conn, name, endpoint, offline=offline)
    if answer is None:
        where = (
            "the catalogue, the dictionary or the SIMBAD cache (offline)"
            if offline
            else "SIMBAD or the dictionary"
        )
        raise TargetError(f"target {name!r} is unknown to {where}")
    if not create:
        raise TargetError(f"{name!r} is not a target yet")
    return _target_from_answer(conn, name, answer)


def object_target(conn: Connection, name: str | None) -> int | None:
    """The target of an OBJECT name at ingest, without the network: known, or a new unresolved one.

    Files must link even when SIMBAD is out of reach; ``hcdc target resolve`` fills the new
    target later. Returns None for empty names.
    """
    if not name or not normalize_name(name):
        return None
    try:
        return resolve(conn, name, offline=True)
    except TargetError:
        pass
    try:
        with conn.begin_nested():
            return create_target(conn, name.strip(), resolved="unresolved", alias_origin="object")
    except IntegrityError:
        # Another process (a watcher and an ingest by hand, two ingest workers) created the same
        # target between our lookup and our insert; PostgreSQL made us wait for its commit, then
        # refused our alias. Its target is the one: linking to it keeps this file's transaction.
        target_id = find_target(conn, name)
        if target_id is None:
            raise
        return target_id


# --------------------------------------------------------------------------------------------
# links and listings


def link(conn: Connection, kind: str, items: Iterable[tuple[int, str | None]]) -> int:
    """Link catalogued objects (``kind`` file / dataset / product, ``(id, target name)``) to targets.

    Names are resolved offline (:func:`object_target`); returns the number of links written.
    """
    count = 0
    for object_id, name in items:
        target_id = object_target(conn, name)
        if target_id is None:
            continue
        conn.execute(delete(TargetLink).where(TargetLink.kind == kind, TargetLink.object_id == object_id))
        conn.execute(
            insert(TargetLink).values(target_id=target_id, kind=kind, object_id=object_id, object_name=name)
        )
        count += 1
    return count


def target_dict(conn: Connection, target_id: int) -> dict[str, Any]:
    """A target as JSON-ready dict: values, sources, aliases and counts of linked objects."""
    row = conn.execute(select(Target).where(Target.id == target_id)).first()
    if row is None:
        raise TargetError(f"no target {target_id}")
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "simbad_id": row.simbad_id,
        "resolved": row.resolved,
    }
    out.update({k: getattr(row, k) for k in VALUE_FIELDS})
    out["distance_pc"] = 1000.0 / row.parallax_mas if row.parallax_mas and row.parallax_mas > 0 else None
    out["sources"] = dict(row.sources or {})
    out["aliases"] = [
        r.name
        for r in conn.execute(
            select(TargetAlias.name).where(TargetAlias.target_id == target_id).order_by(TargetAlias.id)
        )
    ]
    links: dict[str, int] = {}
    for r in conn.execute(select(TargetLink.kind).where(TargetLink.target_id == target_id)):
        links[r.kind] = links.get(r.kind, 0) + 1
    out["links"] = links
    return out


def list_targets(conn: Connection, name_like: str | None = None) -> list[dict[str, Any]]:
    """All targets (id, name, coordinates, parallax, spectral type, age, resolution state)."""
    query = select(Target).order_by(Target.name)
    if name_like:
        ids = select(TargetAlias.target_id).where(
            TargetAlias.normalized.like(f"%{normalize_name(name_like)}%")
        )
        query = query.where(Target.id.in_(ids))
    return [
        {
            "id": r.id,
            "name": r.name,
            "ra_deg": r.ra_deg,
            "dec_deg": r.dec_deg,
            "parallax_mas": r.parallax_mas,
            "spectral_type": r.spectral_type,
            "age_myr": r.age_myr,
            "resolved": r.resolved,
        }
        for r in conn.execute(query)
    ]


__all__ = [
    "VALUE_FIELDS",
    "SimbadError",
    "TargetError",
    "add_aliases",
    "add_dictionary_name",
    "ask_simbad",
    "complete_target",
    "create_target",
    "merge_targets",
    "find_target",
    "link",
    "list_targets",
    "normalize_name",
    "object_target",
    "resolve",
    "set_values",
    "target_dict",
]
