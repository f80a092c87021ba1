"""Hostile inputs for the archive's fault suite, generated on the fly (no data files needed).

A minimal but valid raw SPHERE/IRDIS primary header is written card by card as raw bytes, so
that a test can put in it what no FITS writer would (NUL bytes, escape codes, values that do
not fit a column, broken numbers, CONTINUE cards). ``irdis_cards(**overrides)`` gives the card
images (``None`` removes a keyword); ``raw_fits(path, cards)`` writes a file from them.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from hcdc.archive.ingest import ingest

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


def hierarch(key: str) -> str:
    """``'DET NDIT'`` -> ``'HIERARCH ESO DET NDIT'`` (the card keyword as written)."""
    return f"HIERARCH ESO {key}"


def long_string_cards(keyword: str, text: str) -> list[bytes]:
    """A string value (without quotes) written with the CONTINUE convention: each card is
    filled, every part but the last ends with ``&``."""
    assert "'" not in text
    prefix = keyword + " = " if keyword.startswith("HIERARCH ") else keyword.ljust(8) + "= "
    cards, rest = [], text
    while True:
        room = CARD - len(prefix) - 3  # two quotes and the '&'
        part, rest = rest[:room], rest[room:]
        value = "'" + part + ("&'" if rest else "'")
        cards.append((prefix + value).encode("latin-1").ljust(CARD))
        if not rest:
            return cards
        prefix = "CONTINUE  "


@dataclass(frozen=True)
class Expected:
    """What ingest must do with one hostile file.

    ``status`` is ``"quarantined"`` (with ``reason_code`` and a fragment of the reason) or
    ``"ingested"`` (with, optionally, a fragment of a warning kept on the row, and column
    values the row must have).
    """

    status: str
    reason_code: str | None = None
    fragment: str | None = None
    columns: tuple[tuple[str, object], ...] = ()


LONG_OB_NAME = "A long observation block name, " * 3 + "written with CONTINUE cards"


def _irdis(**overrides: str | bytes | None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        raw_fits(path, irdis_cards(**overrides))

    return write


def _irdis_with(extra: list[bytes], **overrides: str | bytes | None) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        raw_fits(path, irdis_cards(**overrides), tuple(extra))

    return write


def _bytes(content: Callable[[], bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(content())

    return write


def _truncated() -> bytes:
    """A header announcing a 100x100 image followed by 1000 of its 20000 bytes."""
    cards = [card("SIMPLE", "T"), card("BITPIX", "16"), card("NAXIS", "2"), card("NAXIS1", "100")]
    cards += [card("NAXIS2", "100"), *irdis_cards(), b"END".ljust(CARD)]
    header = b"".join(cards)
    return header + b" " * (-len(header) % BLOCK) + b"\x00" * 1000  # 20000 bytes announced


def _write_bad_name(path: Path) -> None:
    raw_fits(os.fsencode(path.parent) + b"/name-\xff\xfe.fits", irdis_cards(**{hierarch("OBS ID"): "42"}))


def _q(code: str, fragment: str) -> Expected:
    return Expected("quarantined", code, fragment)


#: Every hostile case of issue 10: file name -> (writer of the file at a path, expectation).
CORPUS: dict[str, tuple[Callable[[Path], None], Expected]] = {
    "good.fits": (_irdis(), Expected("ingested", columns=(("dit", 4.0), ("ndit", 2)))),
    # values that do not fit a column: quarantined the same way on SQLite and PostgreSQL
    "ob-id-above-2-63.fits": (
        _irdis(**{hierarch("OBS ID"): str(2**64 + 1)}),
        _q("invalid-metadata", "ob_id"),
    ),
    "ndit-3e9.fits": (
        _irdis(**{hierarch("DET NDIT"): "3000000000"}),
        _q("invalid-metadata", "ndit = 3000000000"),
    ),
    "nul-in-target.fits": (
        _irdis(**{hierarch("OBS TARG NAME"): b"'ab\x00cd   '"}),
        _q("invalid-metadata", "NUL"),
    ),
    "target-too-long.fits": (
        _irdis_with(
            long_string_cards(hierarch("OBS TARG NAME"), "T" * 200), **{hierarch("OBS TARG NAME"): None}
        ),
        _q("invalid-metadata", "characters"),
    ),
    # invalid essential keywords (IRDIS: DIT and NDIT) quarantine the file
    "dit-abc.fits": (
        _irdis(**{hierarch("DET SEQ1 DIT"): quoted("abc")}),
        _q("invalid-metadata", "DIT = 'abc'"),
    ),
    "dit-nan.fits": (_irdis(**{hierarch("DET SEQ1 DIT"): "NaN"}), _q("invalid-metadata", "DET SEQ1 DIT")),
    "dit-1e400.fits": (_irdis(**{hierarch("DET SEQ1 DIT"): "1e400"}), _q("invalid-metadata", "DET SEQ1 DIT")),
    "ndit-many.fits": (
        _irdis(**{hierarch("DET NDIT"): quoted("many")}),
        _q("invalid-metadata", "NDIT = 'many'"),
    ),
    "no-dpr-type.fits": (_irdis(**{hierarch("DPR TYPE"): None}), _q("invalid-metadata", "DPR TYPE")),
    # invalid optional keywords: catalogued, with a warning on the row
    "tau0-abc.fits": (
        _irdis(**{hierarch("TEL AMBI TAU0"): quoted("abc")}),
        Expected("ingested", fragment="TEL AMBI TAU0 = 'abc'", columns=(("tau0", None),)),
    ),
    "date-mjd-disagree.fits": (
        _irdis(**{"MJD-OBS": "58453.41666667"}),  # one day after DATE-OBS
        Expected("ingested", fragment="disagree", columns=(("mjd_obs", 58453.41666667),)),
    ),
    # long strings: CONTINUE cards joined in the fast header path
    "continue-ob-name.fits": (
        _irdis_with(long_string_cards(hierarch("OBS NAME"), LONG_OB_NAME)),
        Expected("ingested", columns=(("ob_name", LONG_OB_NAME),)),
    ),
    # terminal escape codes: catalogued as written (the listings escape them)
    "escape-codes.fits": (
        _irdis(**{hierarch("OBS TARG NAME"): quoted("\x1b[2J\x1b[31mEvil")}),
        Expected("ingested", columns=(("target", "\x1b[2J\x1b[31mEvil"),)),
    ),
    # not FITS, truncated, empty
    "not-fits.fits": (
        _bytes(lambda: b"hello, I am not a FITS file\n" * 200),
        _q("unreadable", "not a readable"),
    ),
    "truncated.fits": (_bytes(_truncated), _q("unreadable", "truncated")),
    "empty.fits": (_bytes(lambda: b""), _q("unreadable", "")),
    # a file name that is not UTF-8 (the writer ignores the path's name)
    os.fsdecode(b"name-\xff\xfe.fits"): (_write_bad_name, _q("invalid-name", "not valid UTF-8")),
    # special files: neither read nor waited on
    "fifo.fits": (lambda path: os.mkfifo(path), _q("not-regular-file", "FIFO")),
    "zero.fits": (lambda path: os.symlink("/dev/zero", path), _q("not-regular-file", "character device")),
}


def write_corpus(folder: Path, names: Iterable[str] | None = None) -> dict[str, Expected]:
    """Write the hostile cases ``names`` (default: all of :data:`CORPUS`) into ``folder``;
    returns file name -> expectation (names are ``os.fsdecode`` of the bytes on disk)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = list(CORPUS) if names is None else list(names)
    for name in chosen:
        CORPUS[name][0](folder / name)
    return {name: CORPUS[name][1] for name in chosen}


# -- running hostile inputs -------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging for ever) when the block takes longer than ``seconds``, or
    allocates more than 3 GiB of address space.

    SIGALRM interrupts a blocking ``open()`` of a FIFO, which is what hcdc before issue 10 did.
    """

    def expired(_signum, _frame):  # noqa: ANN001
        raise TimeoutError(f"still running after {seconds} s: blocked on a special file?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    # and a memory cap: reading a link to /dev/zero (today's code) must fail, not exhaust the host
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as handle:
        used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = used + (3 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- hypothesis: generated header cards ----------------------------------------------------------

#: Keywords: standard 8-character ones and HIERARCH ones, including those hcdc reads.
_KEYWORDS = st.one_of(
    st.sampled_from(["OBJECT", "EXPTIME", "RA", "DEC", "DATE-OBS", "MJD-OBS", "ORIGFILE", "XX-1_Z"]),
    st.sampled_from(
        [
            hierarch(k)
            for k in ("DET NDIT", "DET SEQ1 DIT", "OBS ID", "OBS NAME", "OBS TARG NAME", "TPL EXPNO")
        ]
    ),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=8),
)
#: Value fields as bytes: numbers of any size, strings with any byte, broken quoting.
_VALUES = st.one_of(
    st.integers().map(lambda n: str(n).encode()),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: repr(x).encode()),
    st.sampled_from([b"T", b"F", b"NaN", b"1e400", b"-1e400", b"(1.0, 2.0)", b"", b"'", b"''", b"'&'"]),
    st.binary(max_size=70).map(lambda b: b"'" + b.replace(b"'", b"''") + b"'"),
    st.binary(max_size=70),
    st.text(max_size=60).map(lambda t: ("'" + t.replace("'", "''") + "'").encode("utf-8", "replace")),
)
#: Whole extra cards: random 80-byte images, and long strings split over CONTINUE cards.
_EXTRA_CARDS = st.lists(
    st.one_of(
        st.binary(min_size=CARD, max_size=CARD).map(lambda b: [b]),
        st.tuples(
            st.sampled_from([hierarch("OBS NAME"), hierarch("OBS TARG NAME"), "LONGSTRN", "HISTORY"]),
            st.text(
                alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="'"),
                max_size=300,
            ),
        ).map(lambda kv: long_string_cards(*kv)),
    ),
    max_size=3,
).map(lambda groups: [c for group in groups for c in group])
#: A hostile header: (keyword -> value field overrides, extra card images).
HOSTILE_CARDS = st.tuples(st.lists(st.tuples(_KEYWORDS, _VALUES), max_size=6), _EXTRA_CARDS)


def hostile_header_outcome(
    catalogue, folder: Path, index: int, cards: tuple[list[tuple[str, bytes]], list[bytes]]
) -> str:
    """Ingest one IRDIS file with ``cards`` (overrides, extra card images) in its header: the
    file must be either catalogued or quarantined with a reason naming it, never stop the batch."""
    overrides = {key: value for key, value in cards[0]}
    path = raw_fits(folder / f"case-{index:05d}.fits", irdis_cards(**overrides), tuple(cards[1]))
    summary = ingest(catalogue, [path], workers=1)
    assert summary.ingested + summary.quarantined + summary.duplicates == 1
    if summary.quarantined:
        assert summary.quarantined_files[0]["reason"].startswith(str(path))
        return "quarantined"
    return "ingested" if summary.ingested else "duplicate"
