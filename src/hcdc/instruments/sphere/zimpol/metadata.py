"""SPHERE/ZIMPOL metadata: observing modes, per-file extras and calibration-association rules.

Used by the SPHERE instrument plugin (:mod:`hcdc.instruments.sphere.metadata`), which routes a file
to ZIMPOL by ``SEQ ARM = 'ZIMPOL'`` (``DET ID = 'ZPL'`` as fall-back). Facts and sources are in
:mod:`hcdc.instruments.sphere.zimpol.constants`.

* ``mode``: ``ZIMPOL-POL`` when ``DPR TECH`` contains ``POLARIMETRY`` (or the read-out mode is a
  polarimetric one), else ``ZIMPOL-IMG``;
* ``extra['zimpol_science_type']``: the ESO calChecker science type, ``ZPL_SCI_IMG``,
  ``ZPL_SCI_P1`` (polarimetry, field stabilised: ``INS4 DROT2 MODE = SKY``) or ``ZPL_SCI_P2``
  (pupil stabilised: ``ELEV``);
* ``extra['zimpol_stokes']``: ``Qplus``/``Qminus``/``Uplus``/``Uminus`` of polarimetric files;
* ``filter``: ``<CAM1 filter>/<CAM2 filter>`` (``INS3 OPTI5/OPTI6 NAME``).
"""

from __future__ import annotations

from typing import Any

from hcdc.instruments.eso import eso
from hcdc.instruments.rules import Need
from hcdc.instruments.sphere.zimpol import constants as zc

__all__ = ["ZIMPOL_EXTRA", "ZIMPOL_RULES", "zimpol_mode", "zimpol_science_type"]

#: extra[...] name -> keywords, ZIMPOL only (the filter wheels are in the SPHERE-wide map).
ZIMPOL_EXTRA: dict[str, tuple[str, ...]] = {
    "zimpol_stokes": (eso(zc.STOKES_KEYWORD),),
    "zimpol_dither_cam1_x": (eso(zc.DITHER_KEYWORDS[1][0]),),
    "zimpol_dither_cam1_y": (eso(zc.DITHER_KEYWORDS[1][1]),),
    "zimpol_dither_cam2_x": (eso(zc.DITHER_KEYWORDS[2][0]),),
    "zimpol_dither_cam2_y": (eso(zc.DITHER_KEYWORDS[2][1]),),
}


def zimpol_mode(technique: str | None, readout_mode: str | None) -> str:
    """``ZIMPOL-POL`` for polarimetry (``DPR TECH`` or a polarimetric read-out), else ``ZIMPOL-IMG``."""
    if (technique and "POLARIMETRY" in technique) or (readout_mode or "") in zc.POLARIMETRIC_READOUTS:
        return "ZIMPOL-POL"
    return "ZIMPOL-IMG"


def zimpol_science_type(mode: str, derotator_mode: str | None) -> str | None:
    """ESO calChecker science type of a ZIMPOL science file (None when polarimetry's derotator
    mode is neither SKY nor ELEV)."""
    if mode == "ZIMPOL-IMG":
        return "ZPL_SCI_IMG"
    stab = zc.STABILISATION_BY_DEROTATOR.get((derotator_mode or "").strip())
    return f"ZPL_SCI_{stab}" if stab else None


def apply_zimpol(extra: dict[str, Any], meta_mode: str, file_class: str | None) -> None:
    """Add the calChecker science type to ``extra`` for science-side files."""
    if file_class in {"SCIENCE", "CENTER", "FLUX", "SKY"}:
        kind = zimpol_science_type(meta_mode, extra.get("derotator_mode"))
        if kind:
            extra["zimpol_science_type"] = kind


#: Calibrations a ZIMPOL science dataset needs (ESO QC raw types ZPL_BIAS/DARK/IFLAT_IMG/POL:
#: each is taken per read-out mode, IMG or POL; the flat per filter setup -- calChecker setup keys
#: INS3 OPTI2/5/6 NAME and read-out mode).
ZIMPOL_RULES: tuple[Need, ...] = (
    Need("bias", kinds=("BIAS",), match=("readout_mode",), source="ESO QC ZPL_BIAS_IMG/POL"),
    Need(
        "dark",
        kinds=("DARK",),
        match=("dit", "readout_mode"),
        required=False,
        source="ESO QC ZPL_DARK_IMG/POL (CCD dark current is small: optional)",
    ),
    Need(
        "flat",
        kinds=("FLAT",),
        match=("filter", "readout_mode", "extra.zimpol_opti2"),
        source="ESO QC ZPL_IFLAT_IMG/POL; calChecker setup keys INS3 OPTI2/5/6 NAME + read-out mode",
    ),
)
