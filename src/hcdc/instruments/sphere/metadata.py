"""VLT/SPHERE: IRDIS, IFS, ZIMPOL raw frames and SPARTA AO-telemetry files (the instrument plugin).

What all arms share is here (routing to the arm, file classes, keyword maps, ZIMPOL); the
arm-specific vocabularies, modes and association rules are in :mod:`hcdc.instruments.sphere.irdis.metadata`,
:mod:`hcdc.instruments.sphere.ifs.metadata` and :mod:`hcdc.instruments.sphere.sparta`.

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

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from astropy.io import fits

from hcdc.instruments.base import FileMetadata, Instrument, Level1Cube, Level1Frames, MetadataError
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
from hcdc.instruments.sphere.ifs.metadata import IFS_RULES, IFS_WAVELENGTHS_UM, ifs_flat_lamp, ifs_mode
from hcdc.instruments.sphere.irdis.metadata import IRDIS_RULES, irdis_mode, irdis_wavelength_range
from hcdc.instruments.sphere.sparta import apply_sparta_summary
from hcdc.instruments.sphere.zimpol.metadata import ZIMPOL_EXTRA, ZIMPOL_RULES, apply_zimpol, zimpol_mode

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
    **ZIMPOL_EXTRA,
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


# --- calibration association (sphere.md section b) ------------------------------------------

SPHERE_RULES: dict[str | None, tuple[Need, ...]] = {
    "IRDIS": IRDIS_RULES,
    "IFS": IFS_RULES,
    "ZIMPOL": ZIMPOL_RULES,
    "SPARTA": (),
}

#: Keys (besides instrument, arm, night and OB) that make one dataset: spherical groups
#: observations by night and INS2 COMB IFS (IFS) / INS COMB IFLT (IRDIS).
SPHERE_DATASET_SETUP: dict[str | None, tuple[str, ...]] = {
    "IRDIS": ("mode", "filter"),
    "IFS": ("mode",),
    "ZIMPOL": ("mode", "filter"),
}


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

    def read_level1(self, path: Path) -> Level1Cube | None:
        """An IRDIS (:mod:`hcdc.instruments.sphere.irdis.level1`), IFS
        (:mod:`hcdc.instruments.sphere.ifs.level1`) or ZIMPOL imaging
        (:mod:`hcdc.instruments.sphere.zimpol.level1`) Level 1 product, else None."""
        # the reductions: imported when needed
        from hcdc.instruments.sphere.ifs import level1 as ifs_level1
        from hcdc.instruments.sphere.irdis import level1 as irdis_level1
        from hcdc.instruments.sphere.zimpol import level1 as zimpol_level1

        for arm in (irdis_level1, ifs_level1, zimpol_level1):
            if arm.is_level1_product(path):
                return arm.level1_cube(path)
        return None

    def read_level1_frames(self, path: Path, conditions: bool = True) -> Level1Frames | None:
        """IRDIS and IFS: the science cube (memory-mapped) and the ``CONDITIONS`` columns only
        (:func:`hcdc.instruments.sphere.irdis.level1.level1_frames`,
        :func:`hcdc.instruments.sphere.ifs.level1.level1_frames`); other arms: the whole product."""
        from hcdc.instruments.sphere.ifs import level1 as ifs_level1
        from hcdc.instruments.sphere.irdis import level1 as irdis_level1

        if irdis_level1.is_level1_product(path):
            return irdis_level1.level1_frames(path, conditions)
        if ifs_level1.is_level1_product(path):
            return ifs_level1.level1_frames(path, conditions)
        return super().read_level1_frames(path, conditions)

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
            meta.mode = zimpol_mode(meta.technique, meta.readout_mode)
            apply_zimpol(extra, meta.mode, meta.file_class)
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
