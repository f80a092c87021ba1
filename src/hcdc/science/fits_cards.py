"""FITS header cards that are never truncated (pure helper for the product writers).

astropy writes a string value longer than one card with the FITS long-string (``CONTINUE``)
convention, but when the *value* fits in one card and the *comment* does not, it truncates the
comment with a ``VerifyWarning`` (an input path of ~65 characters with its comment is enough).
:func:`set_card` writes such a card with the long-string convention instead: the value on the
keyword card ending in ``&``, the comment on a ``CONTINUE`` card. Numeric values cannot continue:
a comment too long for their card goes to a ``COMMENT`` card naming the keyword.
"""

from __future__ import annotations

import warnings
from typing import Any

from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

__all__ = ["set_card"]

_CARD = 80


def _fits_in_one_card(key: str, value: Any, comment: str) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VerifyWarning)
        fits.Card(key, value, comment).image  # noqa: B018 - formatting is what warns
    return not any("too long" in str(w.message) for w in caught)


def _string_chunks(text: str, room: int) -> list[str]:
    """``text`` (quotes already doubled) cut into pieces of at most ``room`` characters, never
    between the two quotes of an escaped quote."""
    pieces = []
    while text:
        piece = text[:room]
        # An odd number of trailing quotes would split an escaped ''.
        trailing = len(piece) - len(piece.rstrip("'"))
        if trailing % 2 and len(piece) < len(text):
            piece = piece[:-1]
        pieces.append(piece)
        text = text[len(piece) :]
    return pieces or [""]


def _long_string_card(key: str, value: str, comment: str) -> fits.Card:
    """A long-string card: value chunks ending in ``&``, then the comment on CONTINUE cards."""
    keyword = key if len(key) <= 8 and not key.upper().startswith("HIERARCH") else key
    if len(keyword) <= 8:
        head = f"{keyword.upper():<8}= "
    else:
        name = keyword[9:] if keyword.upper().startswith("HIERARCH ") else keyword
        head = f"HIERARCH {name} = "
    images = []
    prefix = head
    for piece in _string_chunks(value.replace("'", "''"), _CARD - len(head) - 3):
        images.append(f"{prefix}'{piece}&'".ljust(_CARD))
        prefix = "CONTINUE  "
    room = _CARD - len("CONTINUE  '&' / ")
    parts = [comment[i : i + room] for i in range(0, len(comment), room)] or [""]
    for i, part in enumerate(parts):
        value_part = "''" if i == len(parts) - 1 else "'&'"
        images.append(f"CONTINUE  {value_part} / {part}".ljust(_CARD))
    return fits.Card.fromstring("".join(images))


def set_card(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    """``header[key] = (value, comment)``, but a card too long for 80 characters keeps its whole
    value and comment: long-string ``CONTINUE`` cards for strings, a ``COMMENT`` card for the
    comment of other values. Replaces an existing ``key``."""
    if _fits_in_one_card(key, value, comment):
        header[key] = (value, comment)
        return
    if key in header:
        del header[key]
    if isinstance(value, str):
        header.append(_long_string_card(key, value, comment))
        return
    header[key] = value
    header["COMMENT"] = f"{key}: {comment}"
