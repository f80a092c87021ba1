"""SPHERE/IRDIS metadata: observing modes, wavelength ranges and calibration-association rules."""

from __future__ import annotations

from hcdc.instruments.rules import Need
from hcdc.instruments.sphere.constants import IRDIS_FILTER_COMBINATIONS
from hcdc.instruments.sphere.rules import SPHERE_BACKGROUND_SOURCE

#: IRDIS: filter-combination prefix -> mode (INS COMB IFLT; ESO irdis_flat_qc1: CI = CLEAR DFW).
IRDIS_MODE_BY_FILTER_PREFIX: tuple[tuple[str, str], ...] = (
    ("DB_", "DBI"),
    ("BB_", "CI"),
    ("NB_", "CI"),
    ("DP_", "DPI"),
    ("S_LR", "LSS"),
    ("S_MR", "LSS"),
)
#: IRDIS: INS1 MODE values that name the mode directly (vlt-sphere classify_irdis_dataset).
IRDIS_MODE_BY_INS1: dict[str, str] = {"DBI": "DBI", "CI": "CI", "DPI": "DPI", "LSS": "LSS"}

#: IRDIS long-slit usable ranges [µm] (vlt-sphere: LRS 940-2330 nm, MRS 940-1820 nm).
IRDIS_LSS_UM: dict[str, tuple[float, float]] = {"S_LR": (0.94, 2.33), "S_MR": (0.94, 1.82)}


def irdis_mode(iflt: str | None, ins1_mode: str | None, technique: str | None) -> str | None:
    """IRDIS observing mode (DBI, CI, DPI, LSS) from INS1 MODE, DPR TECH and INS COMB IFLT."""
    if ins1_mode in IRDIS_MODE_BY_INS1:
        return IRDIS_MODE_BY_INS1[ins1_mode]
    if technique and "POLARIMETRY" in technique:
        return "DPI"
    for prefix, mode in IRDIS_MODE_BY_FILTER_PREFIX:
        if iflt and iflt.startswith(prefix):
            return mode
    return None


def irdis_wavelength_range(iflt: str | None) -> tuple[float, float] | None:
    """(min, max) wavelength [µm] covered by an IRDIS filter combination, None if unknown.

    Centre ± half bandwidth of the left/right channels (:mod:`hcdc.instruments.sphere.constants`,
    from vlt-sphere).
    """
    if not iflt:
        return None
    if iflt in IRDIS_LSS_UM:
        return IRDIS_LSS_UM[iflt]
    # DPI combinations DP_0_<filter> / DP_45_<filter> use the same CFW filter as imaging.
    name = iflt.split("_", 2)[2] if iflt.startswith("DP_") and iflt.count("_") >= 2 else iflt
    combination = IRDIS_FILTER_COMBINATIONS.get(name)
    if not combination:
        return None
    channels = list(zip(combination["wave_nm"], combination["bandwidth_nm"], strict=True))
    low = min(c - w / 2 for c, w in channels) / 1000.0
    high = max(c + w / 2 for c, w in channels) / 1000.0
    return round(low, 4), round(high, 4)


#: calibrations an IRDIS science dataset needs (sphere.md section b)
IRDIS_RULES: tuple[Need, ...] = (
    Need(
        "background",
        kinds=("SKY", "BACKGROUND", "DARK"),
        match=("dit", "readout_mode"),
        match_by_kind={
            "SKY": ("dit", "filter", "nd_filter", "readout_mode"),
            # IRDIS backgrounds depend on ND, filter and dual filter (ESO irdis_background_qc1)
            "BACKGROUND": ("dit", "filter", "nd_filter", "readout_mode"),
        },
        source=SPHERE_BACKGROUND_SOURCE,
    ),
    Need(
        "flat",
        kinds=("FLAT",),
        match=("filter",),
        when={"mode": ("DBI", "CI", "DPI")},
        count=5,
        min_count=2,
        source="vlt-sphere: >1 raw FLAT,LAMP with the same INS COMB IFLT (ESO template: 5)",
    ),
    Need(
        "wave",
        kinds=("WAVE",),
        match=("filter",),
        when={"mode": ("LSS",)},
        source="vlt-sphere SpectroReduction: LAMP,WAVE with the same S_LR/S_MR, closest in time",
    ),
    Need(
        "distortion",
        kinds=("DISTORTION",),
        match=("filter",),
        window_days=20.0,
        required=False,
        source="spherical: nearest LAMP,DISTORT, warning > 20 days (disabled by default in EDPS)",
    ),
)
