"""Parse ESO header text dumps (the archive's ``hdr?DpId=`` display) into astropy headers.

The ESO header display prints one card per line but a few cards are longer than 80 characters
(e.g. ``DET CLDC1 DCNM16``, ``INS4 TILT* FRML``). ``Header.fromtextfile`` mis-aligns on them,
so each line is truncated to 80 characters and parsed on its own (the truncated tail is a
comment, never the value, for the cards seen in the real SPHERE headers).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning

from hcdc.instruments.base import MetadataError

CARD_LENGTH = 80


def parse_header_text(text: str) -> fits.Header:
    """Build a :class:`astropy.io.fits.Header` from an ESO header text dump.

    One card per line; each line is cut to 80 characters and padded; parsing stops at the
    ``END`` card (or at the end of the text). Blank lines are skipped. Raises
    :class:`MetadataError` when no card could be parsed or a line is not a FITS card.
    """
    cards: list[fits.Card] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        image = line[:CARD_LENGTH].ljust(CARD_LENGTH)
        if image.rstrip() == "END":
            break
        if not (_VALUE_CARD.match(image) or _COMMENTARY_CARD.match(image)):
            raise MetadataError(f"header text line {lineno} is not a FITS card: {line[:40]!r}")
        card = fits.Card.fromstring(image)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", VerifyWarning)
                card.verify("fix")
                _ = card.value  # parse now so that a bad value is reported with its line
        except Exception as exc:  # noqa: BLE001 - astropy raises several types for bad cards
            raise MetadataError(
                f"header text line {lineno} is not a FITS card: {line[:40]!r} ({exc})"
            ) from exc
        cards.append(card)
    if not cards:
        raise MetadataError("header text holds no FITS card")
    return fits.Header(cards)


def read_header_text(path: str | Path) -> fits.Header:
    """Read an ESO header text dump file (see :func:`parse_header_text`)."""
    return parse_header_text(Path(path).read_text(encoding="ascii", errors="replace"))


# --- fast card parsing ---------------------------------------------------------------------------
#
# astropy parses a card's value lazily, at ~10 µs per card on first access, and an ESO raw
# header has ~1000 cards. Extraction reads ~100 of them; the parser below turns the whole raw
# header block into a plain dict with one regular-expression pass (~1 ms for 1000 cards), so
# ingest stays close to the speed of a bare astropy header-reading loop. It is checked against
# astropy's own values on the real SPHERE headers and the OIFITS files (tests/instruments).

_VALUE_CARD = re.compile(
    r"^(?:HIERARCH +(?P<hkey>[^=\n]{1,70}?) *=|(?P<key>[A-Z0-9_-]{1,8}) *= )(?P<rest>.*)$",
    re.MULTILINE,
)
_COMMENTARY_CARD = re.compile(r"^(?:COMMENT|HISTORY|CONTINUE|        )")
_END_CARD = re.compile(r"^END *$", re.MULTILINE)
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?$")


def _value_text(rest: str) -> str:
    """The value field of a card (what follows ``= ``), without the comment."""
    text = rest.lstrip()
    if text.startswith("'"):
        start = 1
        while True:
            end = text.find("'", start)
            if end == -1:
                break  # unterminated string: astropy keeps the text up to the comment
            if text[end + 1 : end + 2] == "'":
                start = end + 2  # doubled quote inside the string
                continue
            return text[: end + 1]
    return text.split("/", 1)[0].strip()


def _convert(rest: str) -> Any:
    """Python value of a card's value field as astropy returns it (None for undefined)."""
    raw = _value_text(rest)
    if not raw:
        return None
    if raw[0] == "'":
        if len(raw) == 1 or not raw.endswith("'"):
            # unterminated string (card cut at 80 chars): like astropy, the text up to '/'
            return raw
        return raw[1:-1].replace("''", "'").rstrip()
    if raw == "T":
        return True
    if raw == "F":
        return False
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        return float(raw.replace("D", "E").replace("d", "e"))
    return raw  # complex numbers and non-standard values stay as text


class HeaderValues(Mapping[str, Any]):
    """Read-only ``keyword -> value`` view of a raw header; values are converted on first access.

    Keys are spelled as astropy spells them (``'ESO DPR TYPE'`` for ``HIERARCH ESO DPR TYPE``);
    the first occurrence of a repeated keyword wins, as with astropy's ``header[key]``.
    """

    __slots__ = ("_raw", "_done")

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw
        self._done: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._done[key]
        except KeyError:
            value = self._done[key] = _convert(self._raw[key])
            return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw


def parse_header_block(raw: bytes | str) -> HeaderValues:
    """Keyword -> value of every valued card of a raw FITS header block (80-byte cards).

    COMMENT, HISTORY and blank cards are left out; parsing stops at ``END``. Values are
    converted like astropy does (str without quotes and trailing blanks, bool, int, float,
    None for an undefined value) when first read.
    """
    if isinstance(raw, bytes) and len(raw) % CARD_LENGTH == 0 and b"\n" not in raw[:CARD_LENGTH]:
        # one card per line, in C: append a newline column to the (n, 80) byte array
        cards = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CARD_LENGTH)
        lines = np.empty((cards.shape[0], CARD_LENGTH + 1), dtype=np.uint8)
        lines[:, :CARD_LENGTH] = cards
        lines[:, CARD_LENGTH] = ord("\n")
        text = lines.tobytes().decode("ascii", "replace")
    else:
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        if "\n" not in text[:100]:
            text = "\n".join([text[i : i + CARD_LENGTH] for i in range(0, len(text), CARD_LENGTH)])
    # the END card: a plain substring search (a MULTILINE regex scan costs 50x more)
    end = text.find("\nEND" + " " * (CARD_LENGTH - 3))
    if end == -1 and text.startswith("END"):
        end = 0
    if end == -1:
        end_match = _END_CARD.search(text)  # END card not padded to 80 characters
        end = end_match.start() if end_match else -1
    if end != -1:
        text = text[:end]
    values: dict[str, str] = {}
    if "\nCONTINUE" not in text:
        for hkey, key, rest in _VALUE_CARD.findall(text):
            values.setdefault(hkey or key, rest)
        return HeaderValues(values)
    # long strings (the CONTINUE convention, FITS 4.0 sect. 4.2.1.2): slower path, only taken
    # by headers that have such cards
    for match in _VALUE_CARD.finditer(text):
        key = match["hkey"] or match["key"]
        if key not in values:
            values[key] = _join_continued(match["rest"], text, match.end() + 1)
    return HeaderValues(values)


_CONTINUE = "CONTINUE"
#: A string value field as the long-string convention reads it: the text between the opening
#: quote and the first quote after which only blanks or a comment remain (so a doubled quote
#: that a writer split between two cards stays in the text, still escaped).
_LONG_PART = re.compile(r"^ *'(?P<text>.*?)' *(?:/.*)?$")


def _string_part(rest: str) -> str | None:
    """The still-escaped text of a string value field, trailing blanks removed, or None."""
    match = _LONG_PART.match(rest)
    return None if match is None else match["text"].rstrip()


def _join_continued(rest: str, text: str, position: int) -> str:
    """The value field ``rest`` of a card joined with the ``CONTINUE`` cards that follow it at
    ``position`` in ``text``; returns a value field that :func:`_convert` reads.

    As astropy reads the long-string convention: every CONTINUE card right after a string
    card belongs to it; each part loses its trailing blanks and one trailing ``&``; the
    still-escaped parts are joined and read as one string (so a doubled quote that a writer
    split between two cards is one quote). A first card that is not a string keeps its own
    value; a CONTINUE card without a string value gives its value field (astropy's reading).
    """
    if not text.startswith(_CONTINUE, position):
        return rest
    first = _string_part(rest)
    if first is None:
        return rest
    parts = [first]
    while text.startswith(_CONTINUE, position):
        end = text.find("\n", position)
        field = text[position + len(_CONTINUE) : end if end != -1 else len(text)]
        part = _string_part(field)
        if part is None:
            return field
        parts.append(part)
        if end == -1:
            break
        position = end + 1
    return "'" + "".join(p[:-1] if p.endswith("&") else p for p in parts) + "'"
