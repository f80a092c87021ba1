"""IRDIS dual-polarisation imaging (DPI): header classification and half-wave-plate positions.

Keywords (../shared/reference/sphere.md, IRDAP ``irdap.py``): DPI science has ``DPR TECH``
containing ``POLARIMETRY`` and ``INS1 MODE = DPI`` (vlt-sphere's classification), the polariser
``INS1 OPTI2 NAME = P0-90`` and the NIR half-wave plate ``INS4 OPTI8 NAME = H_NIR`` in the beam.
The HWP position is ``OCS DPI H2RT STOKES`` (``Qplus Qminus Uplus Uminus``) and, independently,
the HWP encoder ``INS4 DROT3 BEGIN`` (``START`` after June 2021) minus 152.15 deg (IRDAP's offset).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hcdc.instruments.sphere.constants import header_value
from hcdc.science.polarimetry import HWP_STOKES, hwp_stokes_label

__all__ = ["HWP_ENCODER_OFFSET_DEG", "is_dpi", "read_hwp_angle", "read_hwp_position"]

#: ``INS4 DROT3 BEGIN`` of the HWP at 0 deg (IRDAP subtracts it; the real headers of
#: shared/data/sphere_headers have ``BEGIN = 152.15`` with ``POSANG = 0``).
HWP_ENCODER_OFFSET_DEG = 152.15


def is_dpi(header: Mapping[str, Any]) -> bool:
    """True for an IRDIS DPI frame: ``DPR TECH`` contains ``POLARIMETRY`` or ``INS1 MODE == DPI``."""
    tech = str(header_value(header, "ESO DPR TECH", "")).upper()
    mode = str(header_value(header, "ESO INS1 MODE", "")).strip().upper()
    return "POLARIMETRY" in tech or mode == "DPI"


def read_hwp_angle(header: Mapping[str, Any]) -> float | None:
    """HWP angle (deg): ``INS4 DROT3 BEGIN`` (or ``START``) minus the encoder offset; None if absent."""
    begin = header_value(header, "ESO INS4 DROT3 BEGIN", None)
    if begin is None:
        begin = header_value(header, "ESO INS4 DROT3 START", None)
    return None if begin is None else float(begin) - HWP_ENCODER_OFFSET_DEG


def read_hwp_position(header: Mapping[str, Any], path: str | Path = "<header>") -> str:
    """HWP position label (``Qplus``/``Qminus``/``Uplus``/``Uminus``) of one frame.

    Uses ``OCS DPI H2RT STOKES`` and checks it against the encoder angle when both exist; raises
    ``ValueError`` naming ``path`` when they disagree, when the keyword holds an unknown value, or
    when neither is present.
    """
    stokes = header_value(header, "ESO OCS DPI H2RT STOKES", None)
    angle = read_hwp_angle(header)
    if stokes is not None:
        stokes = str(stokes).strip()
        if stokes not in HWP_STOKES:
            raise ValueError(f"{path}: OCS DPI H2RT STOKES = {stokes!r} is not one of {HWP_STOKES}")
    if angle is not None:
        try:
            from_angle = hwp_stokes_label(angle)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if stokes is not None and stokes != from_angle:
            raise ValueError(
                f"{path}: OCS DPI H2RT STOKES = {stokes!r} but the HWP encoder says {from_angle!r} "
                f"(INS4 DROT3 - {HWP_ENCODER_OFFSET_DEG} = {angle:.3f} deg)"
            )
        return from_angle
    if stokes is None:
        raise ValueError(f"{path}: no HWP position (neither OCS DPI H2RT STOKES nor INS4 DROT3 BEGIN/START)")
    return stokes
