"""The raw ZIMPOL frame and its re-ordering into images (stripe mask, charge shifting).

One camera's raw frame (:mod:`.constants`, ESO QC / jmilli) is ``rows x columns`` with columns

``[prescan | data, left ADC | overscan | overscan | data, right ADC | prescan]``

(25, 512, 41, 41, 512, 25 on the real 1024 x 1156 detector; the simulator's smaller scales keep
the pre/overscan widths and shrink the data). Rows alternate between **open** rows (even,
0-based) and rows **covered** by the stripe mask (odd); a micro-lens array puts the light of both
onto the open row (Keller 1994). Conventions of hcdc for what the rows hold:

* imaging read-outs (no charge shifting): the open rows hold the image, the covered rows only
  bias and dark current;
* polarimetric read-outs: the charges are shifted between open and covered rows in synchrony
  with the modulator, so after a frame the open row ``2m`` holds modulation state A of image
  row ``m`` and the covered row below it (``2m + 1``) state B. Frames alternate between phase 0
  and phase pi (0 first); in phase pi the modulator states are exchanged, so the open row ``2m``
  holds state B and the covered row ``2m - 1`` (above it) state A of row ``m``. Averaging the two
  phases measures both states with the same pixels (the ZIMPOL principle).

State A/B map onto polarisation through the beam splitter (:mod:`.level1`): for CAM1 state A is
``(I + S)/2`` and B ``(I - S)/2`` (``S`` the Stokes parameter of the half-wave-plate position);
CAM2 sees the other beam of the polarising beam splitter and records them the other way round.
This is hcdc's model (ASSUMPTION on the absolute signs: simulator and reduction share it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdc.instruments.sphere.zimpol import constants as zc

__all__ = [
    "RawLayout",
    "bin_columns",
    "data_region",
    "deinterleave_imaging",
    "deinterleave_polarimetry",
    "frame_phases",
    "insert_data",
    "interleave_imaging",
    "interleave_polarimetry",
    "layout_for_shape",
    "overscan_levels",
]


@dataclass(frozen=True)
class RawLayout:
    """Column layout of one camera's raw frame: ``rows`` and ``data_per_adc`` data columns per half."""

    rows: int
    data_per_adc: int

    @property
    def columns(self) -> int:
        return 2 * (zc.PRESCAN_COLUMNS + self.data_per_adc + zc.OVERSCAN_COLUMNS)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.columns)

    @property
    def left_data(self) -> slice:
        return slice(zc.PRESCAN_COLUMNS, zc.PRESCAN_COLUMNS + self.data_per_adc)

    @property
    def right_data(self) -> slice:
        start = self.columns // 2 + zc.OVERSCAN_COLUMNS
        return slice(start, start + self.data_per_adc)

    @property
    def left_overscan(self) -> slice:
        return slice(self.left_data.stop, self.columns // 2)

    @property
    def right_overscan(self) -> slice:
        return slice(self.columns // 2, self.right_data.start)

    @property
    def data_shape(self) -> tuple[int, int]:
        """(rows, columns) of the data region (both ADC halves side by side)."""
        return (self.rows, 2 * self.data_per_adc)


def layout_for_shape(shape: tuple[int, ...]) -> RawLayout:
    """The :class:`RawLayout` of a raw frame or cube of ``shape`` (last two axes); ``ValueError``
    when the columns cannot hold the pre/overscans or the rows are odd."""
    rows, columns = int(shape[-2]), int(shape[-1])
    data = columns // 2 - zc.PRESCAN_COLUMNS - zc.OVERSCAN_COLUMNS
    if columns % 2 or data <= 0 or rows % 2 or rows <= 0:
        raise ValueError(
            f"not a ZIMPOL raw frame: {rows} x {columns} (need an even number of rows and "
            f"2 x ({zc.PRESCAN_COLUMNS} prescan + data + {zc.OVERSCAN_COLUMNS} overscan) columns, "
            f"{zc.RAW_ROWS} x {zc.RAW_COLUMNS} on the real detector)"
        )
    return RawLayout(rows=rows, data_per_adc=data)


def data_region(raw: np.ndarray, layout: RawLayout | None = None) -> np.ndarray:
    """The light-sensitive columns of ``raw`` (..., rows, columns): both ADC halves side by side."""
    raw = np.asarray(raw)
    layout = layout or layout_for_shape(raw.shape)
    return np.concatenate([raw[..., layout.left_data], raw[..., layout.right_data]], axis=-1)


def overscan_levels(raw: np.ndarray, layout: RawLayout | None = None) -> np.ndarray:
    """Median of each ADC half's overscan columns per frame: shape (..., 2) in the units of ``raw``.

    jmilli reads the dark level from the overscans (the prescans are not clean)."""
    raw = np.asarray(raw, dtype=np.float64)
    layout = layout or layout_for_shape(raw.shape)
    left = np.median(raw[..., layout.left_overscan], axis=(-2, -1))
    right = np.median(raw[..., layout.right_overscan], axis=(-2, -1))
    return np.stack([left, right], axis=-1)


def insert_data(data: np.ndarray, layout: RawLayout, fill: float = 0.0) -> np.ndarray:
    """Inverse of :func:`data_region`: a raw frame (..., rows, columns) with ``data`` in its data
    columns and ``fill`` in the pre/overscans."""
    data = np.asarray(data)
    if data.shape[-2:] != layout.data_shape:
        raise ValueError(f"data {data.shape[-2:]} does not match the layout's {layout.data_shape}")
    out = np.full(data.shape[:-1] + (layout.columns,), fill, dtype=np.result_type(data.dtype, np.float32))
    out[..., layout.left_data] = data[..., : layout.data_per_adc]
    out[..., layout.right_data] = data[..., layout.data_per_adc :]
    return out


def frame_phases(ndit: int) -> np.ndarray:
    """Modulation phase of each frame of a polarimetric cube: 0, 1 (= pi), 0, 1, ... (0 first)."""
    return np.arange(int(ndit)) % 2


def interleave_imaging(image: np.ndarray) -> np.ndarray:
    """Raw data rows (2m, x) of an imaging read-out from the image (m, x): light in the open rows."""
    image = np.asarray(image, dtype=np.float64)
    raw = np.zeros((2 * image.shape[-2], image.shape[-1]))
    raw[0::2] = image
    return raw


def deinterleave_imaging(raw_data: np.ndarray) -> np.ndarray:
    """Image rows (..., m, x) of an imaging read-out: the open rows of ``raw_data`` (..., 2m, x)."""
    return np.asarray(raw_data)[..., 0::2, :]


def interleave_polarimetry(state_a: np.ndarray, state_b: np.ndarray, phase: int) -> np.ndarray:
    """Raw data rows (2m, x) of one polarimetric frame from the two modulation states (m, x).

    Phase 0: row ``2m`` = A[m], row ``2m+1`` = B[m]. Phase 1 (pi): row ``2m`` = B[m], row ``2m-1`` =
    A[m]; the last covered row receives nothing from inside the window (0).
    """
    a = np.asarray(state_a, dtype=np.float64)
    b = np.asarray(state_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"states must be 2-D images of one shape, got {a.shape} and {b.shape}")
    raw = np.zeros((2 * a.shape[0], a.shape[1]))
    if phase == 0:
        raw[0::2], raw[1::2] = a, b
    elif phase == 1:
        raw[0::2] = b
        raw[1:-1:2] = a[1:]
    else:
        raise ValueError(f"phase must be 0 or 1 (pi), got {phase!r}")
    return raw


def deinterleave_polarimetry(raw_data: np.ndarray, phase: int) -> tuple[np.ndarray, np.ndarray]:
    """Modulation states ``(A, B)`` (m, x) of one polarimetric frame's data rows (2m, x).

    Inverse of :func:`interleave_polarimetry`; in phase pi, row 0 of A has no source (NaN).
    """
    raw = np.asarray(raw_data, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[0] % 2:
        raise ValueError(f"polarimetric frame must be 2-D with an even number of rows, got {raw.shape}")
    if phase == 0:
        return raw[0::2].copy(), raw[1::2].copy()
    if phase == 1:
        a = np.full((raw.shape[0] // 2, raw.shape[1]), np.nan)
        a[1:] = raw[1:-1:2]
        return a, raw[0::2].copy()
    raise ValueError(f"phase must be 0 or 1 (pi), got {phase!r}")


def bin_columns(image: np.ndarray) -> np.ndarray:
    """Mean of column pairs (..., m, 2k) -> (..., m, k): the 3.6 x 7.2 mas de-interleaved pixels
    become square 7.2 mas pixels (jmilli bins the same way). NaN propagates."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape[-1] % 2:
        raise ValueError(f"need an even number of columns to bin pairs, got {image.shape[-1]}")
    return 0.5 * (image[..., 0::2] + image[..., 1::2])
