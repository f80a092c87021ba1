"""JSON text for the catalogue's JSON columns: a value serialized already passes through.

Ingest workers encode the (large) header JSON in parallel (:class:`EncodedJSON`); the engines'
serializer (:func:`dump_json`, set by :func:`hcdc.archive.db.make_engine`) then only hands the
text to the database.
"""

from __future__ import annotations

import json

__all__ = ["EncodedJSON", "dump_json"]


class EncodedJSON(str):
    """A value already serialized to JSON text (by an ingest worker): stored as is."""


def dump_json(value: object) -> str:
    """JSON serializer of the engines: passes :class:`EncodedJSON` through, encodes the rest."""
    if isinstance(value, EncodedJSON):
        return str(value)
    return json.dumps(value, default=str)
