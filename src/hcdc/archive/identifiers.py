"""Public identifiers of what the catalogue holds: IVOA publisher DIDs.

Every raw file, product (Level 1 cube, Level 2 product, master calibration) and OIFITS granule
that the VO services publish is named ``ivo://AUTHORITY/KIND?KEY``, where KIND is one of
:data:`KINDS` and KEY is the row's integer id. The same string is ObsCore's
``obs_publisher_did`` and DataLink's ``ID``; the VO layer turns it back into a row with
:func:`parse_publisher_did` and then asks ``archive/access.py`` whether the caller may see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("file", "product", "granule")


class IdentifierError(ValueError):
    """A string that is not one of this data centre's publisher DIDs."""


@dataclass(frozen=True)
class PublisherDid:
    """A parsed publisher DID: the authority, the kind of row and its id."""

    authority: str
    kind: str
    key: int

    def __str__(self) -> str:
        return f"ivo://{self.authority}/{self.kind}?{self.key}"


def publisher_did(authority: str, kind: str, key: int) -> str:
    """The publisher DID of row ``key`` of ``kind`` ('file', 'product' or 'granule')."""
    if kind not in KINDS:
        raise IdentifierError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not authority or "/" in authority or "?" in authority:
        raise IdentifierError(f"invalid IVOA authority {authority!r}")
    return str(PublisherDid(authority, kind, int(key)))


def parse_publisher_did(did: str, authority: str | None = None) -> PublisherDid:
    """Parse ``ivo://AUTHORITY/KIND?KEY``; with ``authority``, refuse DIDs of another one."""
    text = did.strip()
    if not text.lower().startswith("ivo://"):
        raise IdentifierError(f"not an IVOA identifier: {did!r}")
    rest = text[len("ivo://"):]
    head, sep, key = rest.partition("?")
    found_authority, slash, kind = head.partition("/")
    if not (sep and slash and found_authority and kind in KINDS and key.isdigit()):
        raise IdentifierError(
            f"not a publisher DID of this service: {did!r} "
            f"(expected ivo://AUTHORITY/{{{'|'.join(KINDS)}}}?ID)"
        )
    if authority is not None and found_authority.lower() != authority.lower():
        raise IdentifierError(f"{did!r} belongs to authority {found_authority!r}, not {authority!r}")
    return PublisherDid(found_authority, kind, int(key))


def vo_authority(settings: Any) -> str:
    """This data centre's IVOA authority: the ``vo_authority`` setting, else ``hcdc-<id>``.

    The one source of the authority for ObsCore's DIDs, DataLink, the registry record and TAP.
    """
    configured = getattr(settings, "vo_authority", None)
    if configured:
        return str(configured)
    centre_id = getattr(settings, "id", None)
    return f"hcdc-{centre_id[:12]}" if centre_id else "hcdc.local"
