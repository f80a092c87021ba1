"""Hostile inputs for the archive's fault suite, generated on the fly (no data files needed).

A minimal but valid raw SPHERE/IRDIS primary header is written card by card as raw bytes, so
that a test can put in it what no FITS writer would (NUL bytes, escape codes, values that do
not fit a column, broken numbers, CONTINUE cards). ``irdis_cards(**overrides)`` gives the card
images (``None`` removes a keyword); ``raw_fits(path, cards)`` writes a file from them.
"""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 2880
CARD = 80


def card(keyword: str, value: str | bytes, comment: str = "") -> bytes:
    """One 80-byte card image: ``value`` is written as given (quote strings yourself).

    HIERARCH keywords are given with their ``HIERARCH`` prefix. Too long cards are cut (the
    tests that need a long value use CONTINUE cards).
    """
    value_bytes = value if isinstance(value, bytes) else value.encode("latin-1")
    if keyword.startswith("HIERARCH "):
        image = keyword.encode() + b" = " + value_bytes
    else:
        image = keyword.encode().ljust(8) + b"= " + value_bytes.rjust(20)
    if comment:
        image += b" / " + comment.encode()
    return image[:CARD].ljust(CARD)


def quoted(text: str) -> str:
    """A FITS string value (quotes doubled, at least 8 characters between the quotes)."""
    return "'" + text.replace("'", "''").ljust(8) + "'"


#: keyword -> value field of a consistent raw IRDIS DARK file (values as written in the card)
IRDIS_VALUES: dict[str, str] = {
    "INSTRUME": quoted("SPHERE"),
    "OBJECT": quoted("DARK"),
    "DATE-OBS": quoted("2018-11-30T10:00:00.0000"),
    "MJD-OBS": "58452.41666667",
    "EXPTIME": "4.0",
    "HIERARCH ESO DPR CATG": quoted("CALIB"),
    "HIERARCH ESO DPR TYPE": quoted("DARK"),
    "HIERARCH ESO DPR TECH": quoted("IMAGE"),
    "HIERARCH ESO DET ID": quoted("IRDIS"),
    "HIERARCH ESO SEQ ARM": quoted("IRDIS"),
    "HIERARCH ESO DET SEQ1 DIT": "4.0",
    "HIERARCH ESO DET NDIT": "2",
    "HIERARCH ESO DET READ CURNAME": quoted("Nondest"),
    "HIERARCH ESO INS COMB IFLT": quoted("DB_H23"),
    "HIERARCH ESO INS COMB ICOR": quoted("N_ALC_YJH_S"),
    "HIERARCH ESO OBS ID": "200000001",
    "HIERARCH ESO OBS TARG NAME": quoted("51 Eri"),
    "HIERARCH ESO TEL AMBI TAU0": "0.004",
}


def irdis_cards(**overrides: str | bytes | None) -> list[bytes]:
    """Card images of a raw IRDIS file; ``overrides`` maps keyword (``_`` for space and ``-``
    written as given: pass a dict with ``**{"HIERARCH ESO DET NDIT": "x"}``) to a new value
    field, or None to leave the keyword out. New keywords are appended."""
    values: dict[str, str | bytes] = dict(IRDIS_VALUES)
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return [card(k, v) for k, v in values.items()]


def raw_fits(path: str | bytes | Path, cards: list[bytes], extra_cards: tuple[bytes, ...] = ()) -> Path:
    """Write a FITS file: mandatory cards, ``cards``, ``extra_cards``, END, a 2x2 int16 image.

    ``path`` may be bytes (a file name that is not valid UTF-8).
    """
    path = Path(os.fsdecode(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [
        card("SIMPLE", "T"),
        card("BITPIX", "16"),
        card("NAXIS", "2"),
        card("NAXIS1", "2"),
        card("NAXIS2", "2"),
        card("EXTEND", "T"),
        *cards,
        *extra_cards,
        b"END".ljust(CARD),
    ]
    header = b"".join(head)
    header += b" " * (-len(header) % BLOCK)
    data = b"\x00" * 8
    data += b"\x00" * (-len(data) % BLOCK)
    with open(path, "wb") as handle:
        handle.write(header + data)
    return path
