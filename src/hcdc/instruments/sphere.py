"""VLT/SPHERE: IRDIS, IFS, ZIMPOL raw frames and SPARTA AO-telemetry files.

Everything here follows ../shared/reference/sphere.md (sections a.1-a.8, gotchas), itself
sourced from vlt-sphere (A. Vigan), spherical (M. Samland), IRDAP, ESO QC pages and 8 real
IFS headers. Routing (vlt-sphere ``SPHERE.py``): ``DPR TYPE == 'OBJECT,AO'`` is SPARTA
(SPARTA files carry no ``SEQ ARM``); otherwise ``SEQ ARM`` names the arm, with ``DET ID``
as a fallback (spherical).

Normalized vocabularies (``FileMetadata.file_class`` / ``mode``):

* file_class: SCIENCE (OBJECT), CENTER (OBJECT,CENTER), FLUX (OBJECT,FLUX), SKY,
  ASTROMETRY (OBJECT,ASTROMETRY), AO_TELEMETRY (OBJECT,AO), ACQUISITION, DARK,
  BACKGROUND (DARK,BACKGROUND), FLAT (IRDIS/ZIMPOL lamp flat), DETECTOR_FLAT and IFU_FLAT
  (the two IFS FLAT,LAMP kinds), SPECPOS, WAVE (IFS ``WAVE,LAMP`` and IRDIS LSS
  ``LAMP,WAVE`` -- note the reversed order), DISTORTION (LAMP,DISTORT), BIAS, STD,
  CALIB_OTHER, OTHER.
* mode: IRDIS ``DBI`` / ``CI`` / ``DPI`` / ``LSS``; IFS ``IFS-YJ`` / ``IFS-YJH``
  (``INS2 COMB IFS = OBS_H`` means YJH); ZIMPOL ``ZIMPOL-IMG`` / ``ZIMPOL-POL``; SPARTA ``AO``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits

from hcdc.instruments.base import FileMetadata, Instrument, MetadataError
from hcdc.instruments.eso import (
    _float,
    _str,
    add_warning,
    apply_extra,
    common_metadata,
    eso,
    first_keyed,
    invalid_number,
    require,
)
from hcdc.instruments.registry import register
from hcdc.instruments.rules import Need
from hcdc.instruments.sphere_constants import IRDIS_FILTER_COMBINATIONS

INSTRUMENT = "SPHERE"
ARMS = ("IRDIS", "IFS", "ZIMPOL", "SPARTA")

#: ``SEQ ARM`` / ``DET ID`` value -> arm (``ZPL`` is ZIMPOL's detector id in spherical).
ARM_BY_KEYWORD: dict[str, str] = {"IRDIS": "IRDIS", "IFS": "IFS", "ZIMPOL": "ZIMPOL", "ZPL": "ZIMPOL"}

#: DPR TYPE -> file_class, valid for every arm.
FILE_CLASS_COMMON: dict[str, str] = {
    "OBJECT": "SCIENCE",
    "OBJECT,CENTER": "CENTER",
    "OBJECT,FLUX": "FLUX",
    "SKY": "SKY",
    "OBJECT,ASTROMETRY": "ASTROMETRY",
    "OBJECT,AO": "AO_TELEMETRY",
    "DARK": "DARK",
    "DARK,BACKGROUND": "BACKGROUND",
    "FLAT,LAMP": "FLAT",
    "BIAS": "BIAS",
}

#: Arm-specific DPR TYPE -> file_class. ``WAVE,LAMP`` is IFS, ``LAMP,WAVE`` is IRDIS LSS: the
#: two spellings are deliberately NOT interchangeable (sphere.md gotcha).
FILE_CLASS_BY_ARM: dict[str, dict[str, str]] = {
    "IFS": {"WAVE,LAMP": "WAVE", "SPECPOS,LAMP": "SPECPOS", "LAMP,DISTORT": "DISTORTION"},
    "IRDIS": {"LAMP,WAVE": "WAVE", "LAMP,DISTORT": "DISTORTION"},
    "ZIMPOL": {},
    "SPARTA": {},
}

#: DPR CATG values that decide the class whatever the type.
FILE_CLASS_BY_CATEGORY: dict[str, str] = {"ACQUISITION": "ACQUISITION", "TEST": "OTHER"}

#: Science-side classes (files that belong to a dataset sequence).
SCIENCE_CLASSES = frozenset({"SCIENCE", "CENTER", "FLUX", "SKY"})

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

#: IFS: INS2 COMB IFS / INS2 MODE -> mode. OBS_H and IFS-H mean YJH (sphere.md gotcha).
IFS_MODE_BY_COMB: dict[str, str] = {"OBS_YJ": "IFS-YJ", "OBS_H": "IFS-YJH"}
IFS_MODE_BY_INS2: dict[str, str] = {"NIROBS": "IFS-YJ", "IFS-H": "IFS-YJH"}

#: IFS detector-flat lamps: INS2 COMB IFS ``CAL_<lamp>_<YJ|YJH>`` (vlt-sphere sph_ifs_cal_detector_flat).
IFS_FLAT_LAMPS: dict[str, str] = {
    "CAL_BB_2": "BB",  # white lamp 5
    "CAL_NB1_1": "NB1",  # 1020 nm, lamp 1
    "CAL_NB2_1": "NB2",  # 1230 nm, lamp 2
    "CAL_NB3_1": "NB3",  # 1300 nm, lamp 3
    "CAL_NB4_2": "NB4",  # 1550 nm, lamp 4 (YJH only)
}

#: IFS extraction ranges [µm] (charis-dep, sphere.md a.4): YJ 940-1370 nm, YJH 920-1700 nm.
IFS_WAVELENGTHS_UM: dict[str, tuple[float, float]] = {"IFS-YJ": (0.94, 1.37), "IFS-YJH": (0.92, 1.70)}

#: IRDIS long-slit usable ranges [µm] (vlt-sphere: LRS 940-2330 nm, MRS 940-1820 nm).
IRDIS_LSS_UM: dict[str, tuple[float, float]] = {"S_LR": (0.94, 2.33), "S_MR": (0.94, 1.82)}

#: Per-arm keyword maps: FileMetadata field -> keywords tried in order.
ARM_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "IRDIS": {
        "dit": (eso("DET SEQ1 DIT"), "EXPTIME"),
        "filter": (eso("INS COMB IFLT"),),
        "coronagraph": (eso("INS COMB ICOR"),),
        "nd_filter": (eso("INS4 FILT2 NAME"),),
        "readout_mode": (eso("DET READ CURNAME"),),
    },
    "IFS": {
        "dit": (eso("DET SEQ1 DIT"), "EXPTIME"),
        # The IFS spectral setup is INS2 COMB IFS (OBS_YJ, OBS_H, CAL_*); INS COMB IFLT is
        # IRDIS's filter in IRDIFS modes and is kept in extra["iflt"].
        "filter": (eso("INS2 COMB IFS"),),
        "coronagraph": (eso("INS COMB ICOR"),),
        "nd_filter": (eso("INS4 FILT2 NAME"),),
        "readout_mode": (eso("DET READ CURNAME"),),
    },
    "ZIMPOL": {
        "dit": (eso("DET DIT1"), eso("DET SEQ1 DIT"), "EXPTIME"),
        "coronagraph": (eso("INS COMB VCOR"),),
        "readout_mode": (eso("DET READ CURNAME"),),
    },
    "SPARTA": {},
}

#: Keywords every file of an arm must carry (else MetadataError -> quarantine).
ARM_REQUIRED: dict[str, tuple[str, ...]] = {
    "IRDIS": (eso("DPR CATG"), eso("DPR TYPE"), eso("DET SEQ1 DIT"), eso("DET NDIT")),
    "IFS": (eso("DPR CATG"), eso("DPR TYPE"), eso("DET SEQ1 DIT"), eso("DET NDIT")),
    "ZIMPOL": (eso("DPR CATG"), eso("DPR TYPE")),
    "SPARTA": (eso("DPR TYPE"),),
}

#: extra[...] name -> keywords (SPHERE-specific; INS4 DROT2/3 BEGIN was renamed START in
#: June 2021 -- both are read).
SPHERE_EXTRA: dict[str, tuple[str, ...]] = {
    "seq_arm": (eso("SEQ ARM"),),
    "det_id": (eso("DET ID"),),
    "ins_mode": (eso("INS4 MODE"),),
    "irdis_mode": (eso("INS1 MODE"),),
    "ifs_mode": (eso("INS2 MODE"),),
    "ifs_comb": (eso("INS2 COMB IFS"),),
    "iflt": (eso("INS COMB IFLT"),),
    "icor": (eso("INS COMB ICOR"),),
    "vcor": (eso("INS COMB VCOR"),),
    "pola": (eso("INS COMB POLA"),),
    "irdis_filter": (eso("INS1 FILT NAME"),),
    "irdis_dual_filter": (eso("INS1 OPTI2 NAME"),),
    "lyot_stop": (eso("INS1 OPTI1 NAME"),),
    "nir_coronagraph": (eso("INS4 OPTI11 NAME"),),
    "apodizer": (eso("INS4 OPTI10 NAME"),),
    "dichroic": (eso("INS4 OPTI13 NAME"),),
    "disperser": (eso("INS2 OPTI2 NAME"),),
    "cpi_nd": (eso("INS4 FILT2 NAME"),),
    "comb_rot": (eso("INS4 COMB ROT"),),
    "derotator_mode": (eso("INS4 DROT2 MODE"),),
    "drot2_posang": (eso("INS4 DROT2 POSANG"),),
    "drot2_begin": (eso("INS4 DROT2 BEGIN"), eso("INS4 DROT2 START")),
    "drot2_end": (eso("INS4 DROT2 END"),),
    "drot2_ra": (eso("INS4 DROT2 RA"),),
    "drot2_dec": (eso("INS4 DROT2 DEC"),),
    "drot3_begin": (eso("INS4 DROT3 BEGIN"), eso("INS4 DROT3 START")),
    "drot3_end": (eso("INS4 DROT3 END"),),
    "hwp": (eso("INS4 OPTI8 NAME"),),
    "waffle_orient": (eso("OCS WAFFLE ORIENT"),),
    "waffle_ampl": (eso("OCS WAFFLE AMPL"),),
    "obstype_list": (eso("OCS OBSTYPE LIST"),),
    "shutter_open": (eso("INS4 SHUT ST"),),
    "pixscale_mas": ("PIXSCAL",),
    "det_fram_utc": (eso("DET FRAM UTC"),),
    "det_seq_utc": (eso("DET SEQ UTC"),),
    "dit_delay": (eso("DET DITDELAY"),),
    "pac_x": (eso("INS1 PAC X"),),
    "pac_y": (eso("INS1 PAC Y"),),
    "coro_xc": (eso("SEQ CORO XC"),),
    "coro_yc": (eso("SEQ CORO YC"),),
    "zimpol_cam1_filter": (eso("INS3 OPTI5 NAME"),),
    "zimpol_cam2_filter": (eso("INS3 OPTI6 NAME"),),
    "zimpol_opti2": (eso("INS3 OPTI2 NAME"),),
    "ao_viswfs_mode": (eso("AOS VISWFS MODE"),),
    "ao_irwfs_mode": (eso("AOS IRWFS MODE"),),
    "ao_holoop_state": (eso("AOS HOLOOP STATE"),),
    "ao_ttloop_state": (eso("AOS TTLOOP STATE"),),
}


def sphere_arm(header: Mapping[str, Any] | fits.Header) -> str:
    """Arm of a SPHERE file: SPARTA for ``DPR TYPE='OBJECT,AO'``, else SEQ ARM, else DET ID."""
    if _str(header.get(eso("DPR TYPE")) or "") == "OBJECT,AO":
        return "SPARTA"
    for key in (eso("SEQ ARM"), eso("DET ID"), eso("DET NAME")):
        value = _str(header.get(key) or "")
        if value and value.upper() in ARM_BY_KEYWORD:
            return ARM_BY_KEYWORD[value.upper()]
    raise MetadataError("SPHERE file without a known arm: no SEQ ARM / DET ID (IRDIS, IFS, ZIMPOL)")


def classify(
    arm: str, category: str | None, dpr_type: str | None, technique: str | None, ifs_comb: str | None
) -> str:
    """Normalized file_class of a SPHERE file from its arm and DPR keywords (see module doc)."""
    if category in FILE_CLASS_BY_CATEGORY:
        return FILE_CLASS_BY_CATEGORY[category]
    dpr_type = (dpr_type or "").strip()
    cls = FILE_CLASS_BY_ARM.get(arm, {}).get(dpr_type) or FILE_CLASS_COMMON.get(dpr_type)
    if cls is None:
        if dpr_type.startswith("STD"):
            return "STD"
        return "CALIB_OTHER" if category == "CALIB" else "OTHER"
    if arm == "IFS" and cls == "FLAT":
        # Two kinds of IFS lamp flats (vlt-sphere): detector flats are DPR TECH=IMAGE with a
        # CAL_* device combination; the IFU flat is DPR TECH=IFU with OBS_YJ / OBS_H.
        comb = ifs_comb or ""
        if comb.startswith("CAL_") or (technique or "").startswith("IMAGE"):
            return "DETECTOR_FLAT"
        return "IFU_FLAT"
    return cls


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


def ifs_mode(comb: str | None, ins2_mode: str | None) -> str | None:
    """IFS spectral mode (IFS-YJ or IFS-YJH) from INS2 COMB IFS, else INS2 MODE."""
    if comb in IFS_MODE_BY_COMB:
        return IFS_MODE_BY_COMB[comb]
    if comb and comb.startswith("CAL_"):
        if comb.endswith("_YJH"):
            return "IFS-YJH"
        if comb.endswith("_YJ"):
            return "IFS-YJ"
    return IFS_MODE_BY_INS2.get(ins2_mode or "")


def ifs_flat_lamp(comb: str | None) -> str | None:
    """Lamp tag (BB, NB1..NB4) of an IFS detector flat from ``CAL_<lamp>_<YJ|YJH>``."""
    if not comb or not comb.startswith("CAL_"):
        return None
    stem = comb.rsplit("_", 1)[0]
    return IFS_FLAT_LAMPS.get(stem)


def irdis_wavelength_range(iflt: str | None) -> tuple[float, float] | None:
    """(min, max) wavelength [µm] covered by an IRDIS filter combination, None if unknown.

    Centre ± half bandwidth of the left/right channels (``sphere_constants``, from vlt-sphere).
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


# --- calibration association (sphere.md section b) ------------------------------------------

_BACKGROUND_SOURCE = (
    "vlt-sphere sph_ird/ifs_preprocess_science (SKY > DARK,BACKGROUND > DARK, same DIT); "
    "spherical irdis/ifs_observation (SKY also matches filter and ND; warning > 1 day)"
)

#: IFS detector-flat lamps per mode: YJ uses BB + NB1-3, YJH adds NB4 (vlt-sphere).
IFS_LAMPS_BY_MODE: dict[str, tuple[str, ...]] = {
    "IFS-YJ": ("BB", "NB1", "NB2", "NB3"),
    "IFS-YJH": ("BB", "NB1", "NB2", "NB3", "NB4"),
}

#: The IFS calibration dark: DIT 1.65 s (actual 1.650726 s), DARK or DARK,BACKGROUND.
IFS_CALIB_DARK_DIT_S = 1.65


def _ifs_detector_flat(lamp: str) -> Need:
    modes = tuple(mode for mode, lamps in IFS_LAMPS_BY_MODE.items() if lamp in lamps)
    return Need(
        f"detector_flat:{lamp}",
        kinds=("DETECTOR_FLAT",),
        match=("mode",),
        fixed={"extra.ifs_flat_lamp": lamp},
        when={"mode": modes},
        count=2,
        min_count=2,
        distinct="dit",
        source="vlt-sphere check_files_association: 2 raw FLAT,LAMP per lamp (two DITs), closest in time",
    )


SPHERE_RULES: dict[str | None, tuple[Need, ...]] = {
    "IRDIS": (
        Need(
            "background",
            kinds=("SKY", "BACKGROUND", "DARK"),
            match=("dit", "readout_mode"),
            match_by_kind={
                "SKY": ("dit", "filter", "nd_filter", "readout_mode"),
                # IRDIS backgrounds depend on ND, filter and dual filter (ESO irdis_background_qc1)
                "BACKGROUND": ("dit", "filter", "nd_filter", "readout_mode"),
            },
            source=_BACKGROUND_SOURCE,
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
    ),
    "IFS": (
        Need(
            "background",
            kinds=("SKY", "BACKGROUND", "DARK"),
            match=("dit", "readout_mode"),
            match_by_kind={"SKY": ("dit", "filter", "nd_filter", "readout_mode")},
            source=_BACKGROUND_SOURCE,
        ),
        *(_ifs_detector_flat(lamp) for lamp in IFS_FLAT_LAMPS.values()),
        Need("specpos", kinds=("SPECPOS",), match=("mode",), source="vlt-sphere; spherical (1 day)"),
        Need("wave", kinds=("WAVE",), match=("mode",), source="vlt-sphere; spherical (1 day)"),
        Need("ifu_flat", kinds=("IFU_FLAT",), match=("mode",), source="vlt-sphere: FLAT,LAMP DPR TECH=IFU"),
        Need(
            "calib_dark",
            kinds=(("DARK", "BACKGROUND"),),
            fixed={"dit": IFS_CALIB_DARK_DIT_S},
            source="vlt-sphere: dark for specpos/wave/flats, DIT 1.65 s (mandatory)",
        ),
    ),
    "ZIMPOL": (
        # ZIMPOL was not read in depth (sphere.md a.5): setup keys from ESO's calChecker
        # (INS3 OPTI2/5/6 NAME, readout mode); bias, dark and flat per setup.
        Need("bias", kinds=("BIAS",), match=("readout_mode",), source="ESO QC ZPL_BIAS_IMG/POL"),
        Need("dark", kinds=("DARK",), match=("dit", "readout_mode"), source="ESO QC ZPL_DARK_IMG/POL"),
        Need(
            "flat",
            kinds=("FLAT",),
            match=("filter", "readout_mode", "extra.zimpol_opti2"),
            source="ESO QC ZPL_IFLAT_IMG/POL; calChecker setup keys",
        ),
    ),
    "SPARTA": (),
}

#: Keys (besides instrument, arm, night and OB) that make one dataset: spherical groups
#: observations by night and INS2 COMB IFS (IFS) / INS COMB IFLT (IRDIS).
SPHERE_DATASET_SETUP: dict[str | None, tuple[str, ...]] = {
    "IRDIS": ("mode", "filter"),
    "IFS": ("mode",),
    "ZIMPOL": ("mode", "filter"),
}


# --- SPARTA atmospheric telemetry (sphere.md section 2) ----------------------------------------

#: EXTNAME of the SPARTA table of atmospheric parameters and its validity limits
#: (vlt-sphere SPARTA.py / jmilou sparta: 0.05 < SR <= 0.98, 0 < r0 <= 0.9 m, 0 < v <= 50 m/s).
SPARTA_ATM_TABLE = "AtmPerfParams"
SPARTA_LIMITS = {"StrehlRatio": (0.05, 0.98), "R0": (0.0, 0.9), "WindSpeed": (0.0, 50.0)}
SEEING_WAVELENGTH_M = 500e-9  # r0 is given at 500 nm
RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
UNIX_EPOCH_MJD = 40587.0


def sparta_summary(table: fits.BinTableHDU) -> dict[str, Any]:
    """Medians of the valid rows of a SPARTA ``AtmPerfParams`` table.

    Returns ``ao_samples``, ``ao_r0_m``, ``ao_seeing_arcsec`` (= 500 nm / r0),
    ``ao_tau0_s`` (= 0.314 r0 / v), ``ao_wind_speed``, ``ao_strehl`` and the MJD range of the
    valid samples (``Sec + USec·1e-6`` is Unix time). Empty dict when no row is valid.
    """
    names = set(table.columns.names)
    data = table.data
    if not {"Sec", "R0", "WindSpeed", "StrehlRatio"} <= names or data is None or len(data) == 0:
        return {}
    valid = np.ones(len(data), dtype=bool)
    for column, (low, high) in SPARTA_LIMITS.items():
        values = np.asarray(data[column], dtype=float)
        valid &= (values > low) & (values <= high)
    if not valid.any():
        return {"ao_samples": 0}
    r0 = np.asarray(data["R0"], dtype=float)[valid]
    wind = np.asarray(data["WindSpeed"], dtype=float)[valid]
    strehl = np.asarray(data["StrehlRatio"], dtype=float)[valid]
    seconds = np.asarray(data["Sec"], dtype=float)[valid]
    if "USec" in names:
        seconds = seconds + np.asarray(data["USec"], dtype=float)[valid] * 1e-6
    mjd = UNIX_EPOCH_MJD + seconds / 86400.0
    return {
        "ao_samples": int(valid.sum()),
        "ao_r0_m": float(np.median(r0)),
        "ao_seeing_arcsec": float(np.median(SEEING_WAVELENGTH_M / r0 * RAD_TO_ARCSEC)),
        "ao_tau0_s": float(np.median(0.314 * r0 / wind)),
        "ao_wind_speed": float(np.median(wind)),
        "ao_strehl": float(np.median(strehl)),
        "ao_mjd_start": float(mjd.min()),
        "ao_mjd_end": float(mjd.max()),
    }


def apply_sparta_summary(meta: FileMetadata, hdul: fits.HDUList) -> None:
    """Add the AtmPerfParams medians to ``meta.extra``; fill seeing / tau0 / wind / mjd_end
    from them when the primary header has none (SPARTA headers carry no TEL AMBI values)."""
    try:
        table = hdul[SPARTA_ATM_TABLE]
    except (KeyError, IndexError):
        return
    except Exception as exc:  # noqa: BLE001 - astropy raises several types on broken tables
        raise MetadataError(f"unreadable SPARTA table {SPARTA_ATM_TABLE} ({exc})") from exc
    summary = sparta_summary(table)
    meta.extra.update(summary)
    if summary.get("ao_samples"):
        meta.seeing = meta.seeing if meta.seeing is not None else round(summary["ao_seeing_arcsec"], 4)
        meta.tau0 = meta.tau0 if meta.tau0 is not None else round(summary["ao_tau0_s"], 6)
        if meta.wind_speed is None:
            meta.wind_speed = round(summary["ao_wind_speed"], 3)
        meta.mjd_end = summary["ao_mjd_end"]


@register
class Sphere(Instrument):
    """VLT/SPHERE (``INSTRUME='SPHERE'``), all arms; ``FileMetadata.arm`` tells which."""

    name: ClassVar[str] = INSTRUMENT
    priority: ClassVar[int] = 100
    wants_values: ClassVar[bool] = True
    association_rules: ClassVar[Mapping[str | None, tuple[Any, ...]]] = SPHERE_RULES
    dataset_setup: ClassVar[Mapping[str | None, tuple[str, ...]]] = SPHERE_DATASET_SETUP

    identification_keywords: ClassVar[tuple[str, ...]] = ("INSTRUME",)

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        return self.identify_values(header)

    def identify_values(self, values: Mapping[str, Any] | fits.Header) -> bool:
        return str(values.get("INSTRUME", "")).strip().upper() == INSTRUMENT

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        return self._extract(header if values is None else values, hdul)

    def extract_values(self, values: Mapping[str, Any]) -> FileMetadata | None:
        if sphere_arm(values) == "SPARTA":
            return None  # AO telemetry: the AtmPerfParams extension table is read too
        return self._extract(values, None)

    def _extract(self, src: Mapping[str, Any] | fits.Header, hdul: fits.HDUList | None) -> FileMetadata:
        """Metadata from the primary header ``src`` (+ ``hdul`` for SPARTA's table, when given)."""
        arm = sphere_arm(src)
        require(src, ARM_REQUIRED[arm])
        meta = common_metadata(src, INSTRUMENT)
        meta.arm = arm
        for field_name, keywords in ARM_FIELDS[arm].items():
            key, value = first_keyed(src, keywords)
            if value is None:
                continue
            setattr(meta, field_name, _float(value) if field_name == "dit" else _str(value))
            if field_name == "dit" and invalid_number(value, _float):
                add_warning(meta, f"{key} = {value!r} is not a valid number: DIT left empty")
        meta.extra.update(apply_extra(src, SPHERE_EXTRA))
        self._arm_specifics(meta, arm)
        if arm == "SPARTA" and hdul is not None:
            apply_sparta_summary(meta, hdul)
        if meta.dit is not None and meta.dit < 0:
            raise MetadataError(f"invalid DIT {meta.dit} s (negative)")
        return meta

    def _arm_specifics(self, meta: FileMetadata, arm: str) -> None:
        extra: dict[str, Any] = meta.extra
        meta.file_class = classify(arm, meta.category, meta.type, meta.technique, extra.get("ifs_comb"))
        if arm == "IRDIS":
            meta.mode = irdis_mode(meta.filter, extra.get("irdis_mode"), meta.technique)
            band = irdis_wavelength_range(meta.filter)
            if band:
                meta.wavelength_min, meta.wavelength_max = band
        elif arm == "IFS":
            meta.mode = ifs_mode(extra.get("ifs_comb"), extra.get("ifs_mode"))
            if meta.mode in IFS_WAVELENGTHS_UM:
                meta.wavelength_min, meta.wavelength_max = IFS_WAVELENGTHS_UM[meta.mode]
            lamp = ifs_flat_lamp(extra.get("ifs_comb"))
            if meta.file_class == "DETECTOR_FLAT" and lamp:
                extra["ifs_flat_lamp"] = lamp
        elif arm == "ZIMPOL":
            meta.mode = "ZIMPOL-POL" if meta.technique and "POLARIMETRY" in meta.technique else "ZIMPOL-IMG"
            cams = [extra.get("zimpol_cam1_filter"), extra.get("zimpol_cam2_filter")]
            if any(cams):
                meta.filter = "/".join(c or "-" for c in cams)
        elif arm == "SPARTA":
            meta.mode = "AO"
            if (meta.prog_id or "").lower() == "maintenance":
                # vlt-sphere drops these: technical telemetry, not attached to a science OB.
                extra["maintenance"] = True
        if meta.technique and "SAM" in meta.technique.split(","):
            extra["sam"] = True  # sparse-aperture masking (spherical)
