"""VLT/NACO (NAOS+CONICA) raw frames.

Keywords and values, from public NACO reduction code read for this project (no NACO raw
header is in ../shared/data; the VIP beta Pic cube there is a reduced product without ESO
keywords):

* ``INSTRUME = 'NAOS+CONICA'`` (Astro::FITS::HdrTrans::NACO ``this_instrument``).
* ``DPR CATG/TYPE/TECH``; types seen in a NACO AGPM real-time monitor (A. Cheetham,
  ``detect_filetype``): ``OBJECT``, ``SKY``, ``FLAT,LAMP``, ``FLAT,SKY``, ``STD``, ``DARK``.
* ``DET DIT``, ``DET NDIT`` (ESO NACO skyBG IDL script), ``EXPTIME``.
* ``INS OPTI1 NAME``/``ID`` = focal-plane mask (``ID='AGPM'`` when the vortex coronagraph is
  in), ``INS OPTI3 NAME`` = pupil stop wheel (``ND_Long`` is a neutral density there),
  ``INS OPTI4/5/6 NAME`` filter wheels (``INS OPTIn TYPE='FILTER'``; ``L_prime`` etc.),
  ``INS OPTI7 NAME`` = camera objective (``L27``, ``S13``, ...), ``INS CWLEN`` [µm] central
  wavelength, ``INS PIXSCALE`` [arcsec/px].
* Readout: ``DET NCORRS NAME`` (``Double_RdRstRd``, ``FowlerNsamp``, ``Uncorr``) and
  ``DET MODE NAME`` (``HighSensitivity``, ``HighDynamic``, ``HighWellDepth``,
  ``HighBackground``) (CONICA manual table quoted in public NACO code).

Normalized values: file_class SCIENCE / SKY / DARK / FLAT / STD / ACQUISITION / CALIB_OTHER /
OTHER; mode AGPM (vortex coronagraph), CORO (other coronagraph), SAM, POL, SPEC, IMG;
readout_mode ``<NCORRS>/<MODE>`` (e.g. ``Uncorr/HighWellDepth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from astropy.io import fits

from hcdc.instruments.base import FileMetadata, Instrument, MetadataError
from hcdc.instruments.eso import _float, _str, apply_extra, common_metadata, eso, first_keyed, require
from hcdc.instruments.registry import register
from hcdc.instruments.rules import Need

INSTRUMENT = "NACO"
INSTRUME_VALUES = frozenset({"NAOS+CONICA", "NACO"})

#: DPR TYPE -> file_class.
FILE_CLASS: dict[str, str] = {
    "OBJECT": "SCIENCE",
    "SKY": "SKY",
    "DARK": "DARK",
    "FLAT,LAMP": "FLAT",
    "LAMP,FLAT": "FLAT",
    "FLAT,SKY": "FLAT",
    "SKY,FLAT": "FLAT",
    "STD": "STD",
}

#: Filter wheels (in light-path order) whose NAME makes up the filter combination.
FILTER_WHEELS: tuple[str, ...] = ("INS OPTI4", "INS OPTI5", "INS OPTI6")
#: Wheel positions that mean "no filter".
EMPTY_POSITIONS = frozenset({"", "EMPTY", "OPEN", "CLEAR", "FREE", "NONE"})

#: extra[...] name -> keywords.
NACO_EXTRA: dict[str, tuple[str, ...]] = {
    "mask": (eso("INS OPTI1 NAME"),),
    "mask_id": (eso("INS OPTI1 ID"),),
    "pupil_stop": (eso("INS OPTI3 NAME"),),
    "camera": (eso("INS OPTI7 NAME"),),
    "cwlen_um": (eso("INS CWLEN"),),
    "pixscale_arcsec": (eso("INS PIXSCALE"),),
    "ncorrs": (eso("DET NCORRS NAME"),),
    "det_mode": (eso("DET MODE NAME"),),
    "nexpo": (eso("SEQ NEXPO"),),
    "rot_start": (eso("ADA ABSROT START"),),
    "rot_end": (eso("ADA ABSROT END"),),
    "posang": (eso("ADA POSANG"),),
}


def filter_combination(header: Mapping[str, Any] | fits.Header) -> str | None:
    """``+``-joined names of the filters in the beam (wheels typed FILTER when typed)."""
    names: list[str] = []
    for wheel in FILTER_WHEELS:
        name = _str(header.get(eso(f"{wheel} NAME")) or "")
        kind = _str(header.get(eso(f"{wheel} TYPE")) or "")
        if not name or name.upper() in EMPTY_POSITIONS:
            continue
        if kind and kind.upper() != "FILTER":
            continue
        names.append(name)
    return "+".join(names) or None


def coronagraph(header: Mapping[str, Any] | fits.Header) -> str | None:
    """``AGPM`` when the vortex is in (INS OPTI1 ID/NAME), else the OPTI1 mask name, else None."""
    for key in (eso("INS OPTI1 ID"), eso("INS OPTI1 NAME")):
        value = _str(header.get(key) or "")
        if value and "AGPM" in value.upper():
            return "AGPM"
    name = _str(header.get(eso("INS OPTI1 NAME")) or "")
    if name and name.upper() not in EMPTY_POSITIONS:
        return name
    return None


def naco_mode(technique: str | None, coro: str | None) -> str:
    """Observing mode: AGPM, CORO, SAM, POL, SPEC or IMG (first match in that order)."""
    tech = (technique or "").upper()
    if coro == "AGPM":
        return "AGPM"
    if "SAM" in tech:
        return "SAM"
    if "CORONOGRAPHY" in tech or "CORONAGRAPHY" in tech:
        return "CORO"
    if "POLARIMETRY" in tech:
        return "POL"
    if "SPECTRUM" in tech:
        return "SPEC"
    return "IMG"


#: NACO association (a reasonable set, not taken from an ESO document): backgrounds are
#: SKY frames with the science DIT, filter, camera and readout, else DARKs with the DIT and
#: readout; flats (lamp or sky) with the same filter and camera.
NACO_RULES: dict[str | None, tuple[Need, ...]] = {
    "CONICA": (
        Need(
            "background",
            kinds=("SKY", "DARK"),
            match=("dit", "readout_mode"),
            match_by_kind={"SKY": ("dit", "filter", "readout_mode", "extra.camera")},
            source="NACO practice: sky frames with the science setup, else dark with the same DIT",
        ),
        Need(
            "flat",
            kinds=("FLAT",),
            match=("filter", "extra.camera"),
            count=2,
            window_days=3.0,
            source="NACO practice: lamp or twilight flats with the same filter and objective",
        ),
    ),
}
NACO_DATASET_SETUP: dict[str | None, tuple[str, ...]] = {"CONICA": ("filter", "extra.camera")}


@register
class Naco(Instrument):
    """VLT/NACO (``INSTRUME='NAOS+CONICA'``)."""

    name: ClassVar[str] = INSTRUMENT
    priority: ClassVar[int] = 100
    wants_values: ClassVar[bool] = True
    association_rules: ClassVar[Mapping[str | None, tuple[Any, ...]]] = NACO_RULES
    dataset_setup: ClassVar[Mapping[str | None, tuple[str, ...]]] = NACO_DATASET_SETUP

    identification_keywords: ClassVar[tuple[str, ...]] = ("INSTRUME",)

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        return self.identify_values(header)

    def identify_values(self, values: Mapping[str, Any] | fits.Header) -> bool:
        return str(values.get("INSTRUME", "")).strip().upper() in INSTRUME_VALUES

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        return self.extract_values(header if values is None else values)

    def extract_values(self, values: Mapping[str, Any] | fits.Header) -> FileMetadata:
        # NACO reads the primary header only: both paths end here
        src = values
        require(src, (eso("DPR CATG"), eso("DPR TYPE")))
        meta = common_metadata(src, INSTRUMENT)
        meta.arm = "CONICA"
        key, raw_dit = first_keyed(src, (eso("DET DIT"), "EXPTIME"))
        if raw_dit is None:
            raise MetadataError(f"missing essential keyword {eso('DET DIT')} (and EXPTIME)")
        meta.dit = _float(raw_dit)
        if meta.dit is None:
            raise MetadataError(f"invalid essential keyword {key} = {raw_dit!r} (not a valid finite number)")
        meta.filter = filter_combination(src)
        meta.coronagraph = coronagraph(src)
        pupil = _str(src.get(eso("INS OPTI3 NAME")) or "")
        meta.nd_filter = pupil if pupil and pupil.upper().startswith("ND") else None
        ncorrs = _str(src.get(eso("DET NCORRS NAME")) or "")
        det_mode = _str(src.get(eso("DET MODE NAME")) or "")
        meta.readout_mode = "/".join(v for v in (ncorrs, det_mode) if v) or None
        meta.extra.update(apply_extra(src, NACO_EXTRA))
        if meta.category == "ACQUISITION":
            meta.file_class = "ACQUISITION"
        else:
            meta.file_class = FILE_CLASS.get(meta.type or "") or (
                "CALIB_OTHER" if meta.category == "CALIB" else "OTHER"
            )
        meta.mode = naco_mode(meta.technique, meta.coronagraph)
        cwlen = _float(src.get(eso("INS CWLEN")))
        if cwlen is not None and cwlen > 0:
            # only the central wavelength is in the header: the range is that single value
            meta.wavelength_min = meta.wavelength_max = cwlen
        return meta
