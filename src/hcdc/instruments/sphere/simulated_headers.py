"""Header cards shared by the SPHERE night simulators (IRDIS and IFS).

The raw IRDIS and IFS files of one SPHERE observation carry many of the same keywords with the
same formats: the primary (non-ESO) cards, the detector sequencer cards, the observation block
and template cards, the telescope pointing / site / ambient cards of the science files and the
derotator pointing. Both simulators build their headers from these functions, so that the two
arms of a simulated IRDIFS night write these cards alike. Each function returns the cards in
the order the simulators write them (the order is part of the simulated bytes: the same seed
must keep giving byte-identical files, the catalogue recognises re-simulated files by sha256).

Cards are returned as ``{ESO key without 'HIERARCH ESO': (value, comment)}``; the caller
writes them with :func:`eso_keyword`. Angles are in degrees, times are ISO UTC strings.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from astropy.io import fits
from astropy.time import Time

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.observing import (
    DIT_DELAY_S,
    DIT_OVERHEAD_S,
    FileConditions,
    PlannedExposure,
    PointedTarget,
    apparent_radec,
)
from hcdc.science.calibration.timing import local_apparent_sidereal_time

__all__ = [
    "archive_name",
    "close_header",
    "Cards",
    "SimulatedTarget",
    "derotator_pointing_cards",
    "detector_cards",
    "eso_keyword",
    "observation_block_cards",
    "pack_sexagesimal",
    "pointing_as_written",
    "paranal_site_cards",
    "primary_header",
    "science_target_cards",
    "telescope_cards",
    "template_cards",
]

#: ESO keyword (without ``HIERARCH ESO``) -> (value, comment).
Cards = dict[str, tuple[Any, str]]


class SimulatedTarget(PointedTarget, Protocol):
    """What the header cards need of a target: a :class:`PointedTarget` with a name."""

    @property
    def name(self) -> str: ...


def eso_keyword(key: str) -> str:
    """FITS keyword of the ESO key ``key`` (``'DET NDIT'`` -> ``'HIERARCH ESO DET NDIT'``)."""
    return f"HIERARCH ESO {key}"


def pack_sexagesimal(value: float, decimals: int = 3) -> float:
    """ESO packed sexagesimal ``(+-)DDMMSS.sss`` of ``value`` (hours or degrees).

    Seconds are rounded to ``decimals`` first and carried into minutes/units, so that the
    result never shows 60 seconds or 60 minutes (``4.99999999 h`` -> ``50000.000``).
    """
    sign = -1.0 if value < 0 else 1.0
    total_seconds = round(abs(value) * 3600.0, decimals)
    units = math.floor(total_seconds / 3600.0)
    minutes = math.floor((total_seconds - units * 3600.0) / 60.0)
    seconds = round(total_seconds - units * 3600.0 - minutes * 60.0, decimals)
    return round(sign * (units * 10000.0 + minutes * 100.0 + seconds), decimals)


def archive_name(date_obs: str, colon: bool = True) -> str:
    """ESO archive file name ``SPHER.<DATE-OBS rounded to ms>.fits`` (``':'`` or ``'_'``)."""
    t = Time(date_obs, scale="utc", precision=3)
    stamp = t.isot  # astropy rounds to the requested precision
    if not colon:
        stamp = stamp.replace(":", "_")
    return f"SPHER.{stamp}.fits"


def close_header(
    h: fits.Header,
    cards: Cards,
    *,
    date_obs: str,
    simulator: str,
    seed: int,
    plain: Cards | None = None,
) -> fits.Header:
    """Append ``cards`` as ``HIERARCH ESO`` cards, the ``plain`` cards, ARCFILE and the hcdc cards.

    ARCFILE is :func:`archive_name` of ``date_obs``; HCDCSIM (True, commented with the
    ``simulator`` module name) and HCDCSEED (the night seed) mark the file as simulated.
    Returns ``h``.
    """
    for key, (value, comment) in cards.items():
        h[eso_keyword(key)] = (value, comment)
    for key, (value, comment) in (plain or {}).items():
        h[key] = (value, comment)
    h["ARCFILE"] = (archive_name(date_obs, colon=True), "Archive File Name")
    h["HCDCSIM"] = (True, f"simulated by hcdc ({simulator})")
    h["HCDCSEED"] = (seed, "hcdc simulator seed")
    return h


def primary_header(exp: PlannedExposure, target: SimulatedTarget, *, observer: bool) -> fits.Header:
    """The primary (non-ESO) cards of a raw SPHERE file, ORIGIN to BUNIT.

    Science files name the target and carry its J2000 pointing (RA/DEC in deg); calibration
    files name their DPR TYPE. ``UTC`` and ``LST`` are seconds of the day at DATE-OBS (LST:
    local apparent sidereal time at Paranal). ``observer``: write ``OBSERVER`` (the real IRDIS
    headers have it, the real IFS headers do not).
    """
    t0 = Time(exp.date_obs, scale="utc")
    science = exp.dpr_catg == "SCIENCE"
    h = fits.Header()
    h["ORIGIN"] = ("ESO-PARANAL", "European Southern Observatory")
    h["DATE"] = (exp.fram_utc, "Date the file was written")
    h["TELESCOP"] = ("ESO-VLT-U3", "ESO <TEL>")
    h["INSTRUME"] = ("SPHERE", "Instrument used.")
    h["OBJECT"] = (target.name if science else exp.dpr_type, "Original target.")
    if science:
        h["RA"] = (round(target.ra_deg, 6), "[deg] RA (J2000) pointing")
        h["DEC"] = (round(target.dec_deg, 5), "[deg] DEC (J2000) pointing")
        h["EQUINOX"] = (2000.0, "Standard FK5")
        h["RADECSYS"] = ("FK5", "Coordinate system")
    h["EXPTIME"] = (exp.dit, "Integration time")
    h["MJD-OBS"] = (round(t0.mjd, 8), exp.date_obs)
    h["DATE-OBS"] = (exp.date_obs, "Observing date")
    d = t0.datetime
    h["UTC"] = (float(d.hour * 3600 + d.minute * 60 + d.second), "[s] UTC")
    lst_s = float(local_apparent_sidereal_time(t0, sc.PARANAL_LON_DEG)[0]) / 15.0 * 3600.0
    h["LST"] = (round(lst_s, 3), "[s] LST")
    h["PI-COI"] = ("UNKNOWN", "PI-COI name.")
    if observer:
        h["OBSERVER"] = ("UNKNOWN", "Name of observer.")
    h["ORIGFILE"] = (exp.origfile, "Original File Name")
    h["BUNIT"] = ("adu", "Physical Unit")
    return h


def detector_cards(
    exp: PlannedExposure,
    *,
    detector: str,
    gain_e_per_adu: float,
    shape: tuple[int, int],
    pixel_spacing_m: float | None = None,
    window: bool = False,
) -> Cards:
    """DET cards of a Hawaii-2RG cube read non-destructively (``detector``: 'IRDIS' or 'IFS').

    ``shape``: (ny, nx) in px. ``DET SEQ1 EXPTIME`` = NDIT * (DIT + DITDELAY) s, the timing
    model of :mod:`hcdc.instruments.sphere.observing`. ``pixel_spacing_m`` adds DET CHIP1
    PXSPACE (IFS headers), ``window`` the read-out window DET SEQ1 WIN NX/NY (IRDIS headers).
    """
    ny, nx = shape
    cards: Cards = {
        "DET CHIP1 GAIN": (gain_e_per_adu, "Gain in e-/ADU"),
        "DET CHIP1 ID": ("ESO-Hawaii2RG", "Detector chip identification"),
        "DET CHIP1 NX": (nx, "number of pixels along x"),
        "DET CHIP1 NY": (ny, "number of pixels along y"),
    }
    if pixel_spacing_m is not None:
        cards["DET CHIP1 PXSPACE"] = (pixel_spacing_m, "Pixel-Pixel Spacing")
    cards.update(
        {
            "DET DITDELAY": (DIT_DELAY_S, "[s] Delay before integration"),
            "DET FRAM FORMAT": ("cube", "FITS file format"),
            "DET FRAM NO": (exp.ndit, "Frame number"),
            "DET FRAM TYPE": ("DIT", "Frame type"),
            "DET FRAM UTC": (exp.fram_utc, "File Creation Time"),
            "DET ID": (detector, "Detector system Id"),
            "DET NAME": (detector, "Name of detector system"),
            "DET NDIT": (exp.ndit, "Number of Sub-Integrations"),
            "DET NDITSKIP": (0, "DITs skipped at 1st.INT"),
            "DET READ CURID": (4, "Used readout mode id"),
            "DET READ CURNAME": ("Nondest", "Used readout mode name"),
            "DET SEQ UTC": (exp.date_obs, "Sequencer Start Time"),
            "DET SEQ1 DIT": (exp.dit, "[s] Integration time"),
            "DET SEQ1 EXPTIME": (
                round(exp.ndit * (exp.dit + DIT_OVERHEAD_S), 7),
                "[s] Exposure Sequence Time",
            ),
        }
    )
    if window:
        cards["DET SEQ1 WIN NX"] = (nx, "Read-out window NX")
        cards["DET SEQ1 WIN NY"] = (ny, "Read-out window NY")
    return cards


def derotator_pointing_cards(radec_of_date: tuple[float, float]) -> Cards:
    """INS4 DROT2 POSANG/RA/DEC: the derotator's position angle (0) and the pointing of date.

    ``radec_of_date`` in deg; RA is written in packed hours (6 decimals), Dec in packed
    degrees (5 decimals), as in the real headers (the simulators compute their angles from what
    a reader decodes from these two cards).
    """
    ra_deg, dec_deg = radec_of_date
    return {
        "INS4 DROT2 POSANG": (0.0, "[deg] Position angle."),
        "INS4 DROT2 RA": (pack_sexagesimal(ra_deg / 15.0, 6), "Telescope right ascension."),
        "INS4 DROT2 DEC": (pack_sexagesimal(dec_deg, 5), "Telescope desclination."),
    }


def pointing_as_written(target: SimulatedTarget, when: Time) -> tuple[float, float]:
    """Coordinates of date (deg) of ``target`` at ``when`` as a reader decodes them from the header.

    The apparent RA/Dec (:func:`hcdc.instruments.sphere.observing.apparent_radec`) rounded
    through the packed INS4 DROT2 RA/DEC cards of :func:`derotator_pointing_cards`: the
    simulators compute their angles from these, so that a reduction of the simulated files
    finds the same angles from the headers.
    """
    ra_deg, dec_deg = apparent_radec(target, when)
    ra_used = sc.parse_packed_sexagesimal(pack_sexagesimal(ra_deg / 15.0, 6)) * 15.0
    dec_used = sc.parse_packed_sexagesimal(pack_sexagesimal(dec_deg, 5))
    return ra_used, dec_used


def observation_block_cards(exp: PlannedExposure) -> Cards:
    """OBS ID, NAME, PI-COI NAME, PROG ID and START (the OB start is the template start)."""
    return {
        "OBS ID": (exp.obs_id, "Observation block ID"),
        "OBS NAME": (exp.obs_name, "OB name"),
        "OBS PI-COI NAME": ("UNKNOWN", "PI-COI name"),
        "OBS PROG ID": (exp.prog_id, "ESO program identification"),
        "OBS START": (exp.tpl_start, "OB start time"),
    }


def science_target_cards(target: SimulatedTarget, waffle_orient: str) -> Cards:
    """OBS TARG NAME and the OCS star-centre (waffle) settings of a science file.

    The real calibration headers have none of these. ``waffle_orient``: 'x' or '+'.
    """
    return {
        "OBS TARG NAME": (target.name.replace(" ", ""), "OB target name"),
        "OCS OBSTYPE LIST": ("F C O S", "User defined list of observ. types"),
        "OCS WAFFLE AMPL": (0.05, "User defined waffle amplitude"),
        "OCS WAFFLE ORIENT": (waffle_orient, "User defined waffle orientation"),
    }


def paranal_site_cards() -> Cards:
    """TEL GEOELEV (m), GEOLAT and GEOLON (deg, +East) of the VLT at Paranal."""
    return {
        "TEL GEOELEV": (sc.PARANAL_HEIGHT_M, "[m] Elevation above sea level"),
        "TEL GEOLAT": (sc.PARANAL_LAT_DEG, "[deg] Tel geo latitute (+=North)"),
        "TEL GEOLON": (sc.PARANAL_LON_DEG, "[deg] Tel geo longitude (+=East)"),
    }


def telescope_cards(target: SimulatedTarget, sky: FileConditions, extra: Cards | None = None) -> Cards:
    """TEL pointing, airmass, ambient, parallactic-angle and target cards of a science file.

    ``sky``: the file's :class:`~hcdc.instruments.sphere.observing.FileConditions` (altitude
    and azimuth at the start in deg, ESO azimuth S=0, W=90; airmass at start and end;
    parallactic angles in deg; ambient conditions: seeing in arcsec, tau0 in s, wind m/s and
    deg, temperature deg C, pressure hPa, humidity %). ``extra`` cards (each instrument's own
    TEL cards) join them; all are returned sorted by key, the order of the real headers.
    """
    alt, az, airm_start, airm_end = sky.alt_az_airm
    ambient, parang_start_end = sky.ambient, sky.parang_start_end
    cards: Cards = {
        "TEL AIRM END": (round(airm_end, 3), "Airmass at end"),
        "TEL AIRM START": (round(airm_start, 3), "Airmass at start"),
        "TEL ALT": (round(alt, 3), "[deg] Alt angle at start"),
        "TEL AMBI FWHM END": (round(ambient["fwhm_end"], 2), "[arcsec] Observatory Seeing"),
        "TEL AMBI FWHM START": (round(ambient["fwhm_start"], 2), "[arcsec] Observatory Seeing"),
        "TEL AMBI PRES END": (round(ambient["pres"], 2), "[hPa] Observatory air pressure"),
        "TEL AMBI PRES START": (round(ambient["pres"], 2), "[hPa] Observatory air pressure"),
        "TEL AMBI RHUM": (round(ambient["rhum"], 1), "[%] Observatory relative humidity"),
        "TEL AMBI TAU0": (round(ambient["tau0"], 4), "[s] Average coherence time"),
        "TEL AMBI TEMP": (round(ambient["temp"], 2), "[deg C] Observatory ambient temperature"),
        "TEL AMBI WINDDIR": (round(ambient["winddir"], 1), "[deg] Observatory wind direction"),
        "TEL AMBI WINDSP": (round(ambient["windsp"], 2), "[m/s] Observatory ambient wind speed"),
        "TEL AZ": (round(az, 3), "[deg] Az angle at start S=0,W=90"),
        "TEL PARANG END": (round(parang_start_end[1], 3), "[deg] Parallactic angle at end"),
        "TEL PARANG START": (round(parang_start_end[0], 3), "[deg] Parallactic angle at start"),
        "TEL TARG ALPHA": (pack_sexagesimal(target.ra_deg / 15.0, 3), "Alpha coordinate for the target"),
        "TEL TARG DELTA": (pack_sexagesimal(target.dec_deg, 3), "Delta coordinate for the target"),
        "TEL TARG EPOCH": (2000.0, "[yr] Epoch 1950 or 2000"),
        "TEL TARG EQUINOX": (2000.0, "[yr] Equinox"),
        "TEL TARG PMA": (target.pm_ra_arcsec_yr, "[arcsec/yr] Proper Motion Alpha"),
        "TEL TARG PMD": (target.pm_dec_arcsec_yr, "[arcsec/yr] Proper motion Delta"),
    }
    cards.update(extra or {})
    return dict(sorted(cards.items()))


def template_cards(exp: PlannedExposure) -> Cards:
    """TPL EXPNO, ID, NAME, NEXP and START of the template the file belongs to."""
    return {
        "TPL EXPNO": (exp.tpl_expno, "Exposure number within template"),
        "TPL ID": (exp.tpl_id, "Template signature ID"),
        "TPL NAME": (exp.tpl_name, "Template name"),
        "TPL NEXP": (exp.tpl_nexp, "Number of exposures within template"),
        "TPL START": (exp.tpl_start, "TPL start time"),
    }
