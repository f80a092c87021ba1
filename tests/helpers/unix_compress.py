"""A small pure-Python writer of Unix ``compress`` (``.Z``, LZW) files, for tests only.

ESO archive downloads arrive as ``.fits.Z``; no library installed here writes that format, so
the tests make their own with :func:`compress`. The format, as read by ncompress's
``decompress()`` and gzip's ``unlzw.c`` (and by the ``uncompresspy`` package):

* 3-byte header: magic ``0x1f 0x9d``, then a flags byte = max code width (9..16, low 5 bits)
  OR'ed with ``0x80`` (block mode: code 256 is CLEAR). Only block mode is written here, as
  ``compress`` does by default.
* LZW codes, each packed LSB-first into the byte stream. The table starts with the 256 single
  bytes plus CLEAR, so the first new string gets code 257 (``FIRST``).
* Codes start 9 bits wide. A code is written ``n`` bits wide while the next free code ``F``
  (before the code's own new string is added) satisfies ``F <= 2**n``; once ``F > 2**n``
  (and ``n`` < max width) the width grows by one. This matches the decoders, which add a
  string one code later than the encoder and widen when their own free code exceeds
  ``2**n - 1``. So a segment starting at 9 bits holds 256 codes of 9 bits, then 512 of 10 bits,
  then ``2**(n-1)`` codes of ``n`` bits.
* The classic quirk: codes are read in *groups* of 8 codes (``n`` bytes) and, whenever the width
  changes, the decoder skips to the next group boundary, counted in bits from where the current
  width began (``n * 8`` bits). After a natural widening the boundary is already reached
  (``2**(n-1)`` codes is a multiple of 8), but after CLEAR the writer must pad with zero bits up
  to that boundary before the next code, which restarts at 9 bits with a fresh table.
* When the table is full (next free code = ``2**maxbits``) no more strings are added; ``compress``
  then emits CLEAR when the compression ratio drops. Here CLEAR is emitted as soon as the table
  is full (or earlier, at a chosen table size, to exercise resets at any width); both are valid.
  Until the table fills, the output is byte-identical to ncompress 5.0's ``compress -c``.
* The stream ends with the last code's bits, zero-padded to a whole byte.
"""

from __future__ import annotations

MAGIC = b"\x1f\x9d"
BLOCK_MODE = 0x80
INIT_BITS = 9
CLEAR = 256
FIRST = 257  # first code given to a new string in block mode


class _BitWriter:
    """LSB-first code packer that knows where the current code-width segment began."""

    def __init__(self) -> None:
        self.out = bytearray()
        self._acc = 0  # pending bits, LSB first
        self._nacc = 0  # number of pending bits
        self._segment_bits = 0  # bits written since the current code width began

    def write(self, code: int, width: int) -> None:
        self._acc |= code << self._nacc
        self._nacc += width
        self._segment_bits += width
        while self._nacc >= 8:
            self.out.append(self._acc & 0xFF)
            self._acc >>= 8
            self._nacc -= 8

    def new_segment(self, width: int) -> None:
        """Pad with zero bits to the next group boundary (``width * 8`` bits) of this segment."""
        group = width * 8
        pad = -self._segment_bits % group
        if pad:
            self.write(0, pad)
        self._segment_bits = 0

    def finish(self) -> bytes:
        if self._nacc:
            self.out.append(self._acc & 0xFF)
            self._acc = self._nacc = 0
        return bytes(self.out)


def compress(data: bytes, max_bits: int = 16, reset_at: int | None = None) -> bytes:
    """``data`` encoded in the Unix ``compress`` (.Z) format, block mode, codes up to ``max_bits``.

    ``reset_at``: emit CLEAR (and restart with a fresh table and 9-bit codes) as soon as the next
    free code reaches this value, e.g. ``reset_at=400`` resets in the middle of the 9-bit codes.
    By default CLEAR is emitted only when the table is full (next free code ``2**max_bits``).
    """
    if not INIT_BITS <= max_bits <= 16:
        raise ValueError(f"max_bits must be between {INIT_BITS} and 16, not {max_bits}")
    table_end = 1 << max_bits  # codes are < 2**max_bits
    if reset_at is not None and not FIRST < reset_at <= table_end:
        raise ValueError(f"reset_at must be in ({FIRST}, {table_end}], not {reset_at}")
    limit = table_end if reset_at is None else reset_at

    writer = _BitWriter()
    header = MAGIC + bytes([BLOCK_MODE | max_bits])
    if not data:
        return header

    table: dict[int, int] = {}  # (prefix code << 8 | next byte) -> code
    free = FIRST
    width = INIT_BITS

    def emit(code: int) -> None:
        nonlocal width
        if free > (1 << width) and width < max_bits:
            writer.new_segment(width)  # already on a boundary for a natural widening
            width += 1
        writer.write(code, width)

    prefix = data[0]
    for byte in data[1:]:
        key = (prefix << 8) | byte
        code = table.get(key)
        if code is not None:
            prefix = code
            continue
        emit(prefix)
        if free < table_end:
            table[key] = free
            free += 1
        if free >= limit:
            emit(CLEAR)
            writer.new_segment(width)
            table.clear()
            free, width = FIRST, INIT_BITS
        prefix = byte
    emit(prefix)
    return header + writer.finish()
