"""Write a night of realistic raw SPHERE/IFS files (IRDIFS, pupil tracking) with known truth.

:func:`simulate_ifs_night` writes, for one IFS mode (YJ = IRDIFS or YJH = IRDIFS_EXT):

* the science template: OBJECT,FLUX (star off the coronagraph, CPI neutral density),
  OBJECT,CENTER (waffle spots), coronagraphic OBJECT cubes, a second CENTER and FLUX, a SKY;
* the calibrations of the next morning: DARK at the calibration DIT (1.650726 s) and
  DARK,BACKGROUND at the science DITs; the detector flats (FLAT,LAMP, DPR TECH=IMAGE), two DITs
  per lamp (``CAL_BB_2``, ``CAL_NB1_1`` .. ``CAL_NB3_1`` and ``CAL_NB4_2`` in YJH); the
  spectra-position frame (SPECPOS,LAMP, white lamp through the lenslets), the wavelength
  calibration (WAVE,LAMP, the 3 or 4 lasers) and the IFU flat (FLAT,LAMP, DPR TECH=IFU).

Files are ``NDIT x 2048 x 2048`` float32 cubes in ADU (``scale='small'``: 1024 x 1024, the same
optics on a smaller detector, i.e. a smaller field of view), named like the ESO archive's files
and carrying the keywords (names, value vocabularies) of the real IFS headers in
``shared/data/sphere_headers``, so that ingest classifies and associates them as it does real
files. The geometry (lenslet grid, dispersion, 39 output wavelengths) is
:mod:`hcdc.instruments.sphere.ifs.geometry`; the pixel content
:mod:`hcdc.science.simulation.ifs` (focal plane sampled by the lenslets, micro-spectra drawn on
the detector) and the detector model of the IRDIS simulator
(:func:`hcdc.science.simulation.irdis.make_detector`: bias, dark current, flat, hot/dead/
non-linear pixels, Poisson and read noise). Times, pointing and parallactic angles follow the
IRDIS simulator (same helpers): ``TEL PARANG START/END`` are the parallactic angles at the start
of the first and the end of the last DIT of the timing model.

The truth: ``simulation_truth.json`` (companions with their contrast at the 39 output
wavelengths, star position in the lenslet frame, per-file angles, the geometry used) and
``simulation_truth.fits`` (detector maps, the lenslet table with each lenslet's trace position
and response, the output wavelengths, star spectrum and companion contrasts).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.time import Time, TimeDelta

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere import observing as obs
from hcdc.instruments.sphere import simulated_headers as hdr
from hcdc.instruments.sphere import simulated_truth
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.metadata import IFS_LAMPS_BY_MODE
from hcdc.instruments.sphere.irdis import simulate_ao
from hcdc.instruments.sphere.irdis.simulate import (
    FIFTY_ONE_ERI,
    FILE_GAP_S,
    SETUP_GAP_S,
    Target,
    pupil_drot2_deg,
)
from hcdc.instruments.sphere.observing import (
    DIT_DELAY_S,
    DIT_OVERHEAD_S,
    file_rng,
    file_times,
    transit_time,
)
from hcdc.instruments.sphere.simulated_headers import archive_name
from hcdc.science.calibration.ifs_crosstalk import CrosstalkModel, add_crosstalk
from hcdc.science.calibration.timing import (
    derotation_angles,
    dit_times,
    parallactic_angle,
)
from hcdc.science.orientation import rotation_from_derotation
from hcdc.science.simulation import ifs as ifsim
from hcdc.science.simulation import irdis as sim
from hcdc.science.simulation.speckles import NACO_LIKE_ENVELOPE, make_evolving_speckles

__all__ = [
    "IfsCompanion",
    "IfsScale",
    "SCALES",
    "DEFAULT_COMPANIONS",
    "CALIB_DIT_S",
    "SimulatedIfsFile",
    "SimulatedIfsNight",
    "simulate_ifs_night",
    "star_flux_adu_s_nm",
    "read_ifs_truth",
]

#: The IFS calibration DIT (s) of the real WAVE,LAMP headers (vlt-sphere rounds it to 1.65).
CALIB_DIT_S = 1.650726
#: Long DIT (s) of the second detector flat of each lamp (vlt-sphere takes long - short DIT).
#: ASSUMPTION: the real value is not in the reference.
FLAT_LONG_DIT_S = 10.0
#: Simulated read noise (e- rms per DIT): the real headers' DET CHIP1 RON is 0 (not filled);
#: assumed typical Hawaii-2RG value, as for IRDIS.
READ_NOISE_E = 10.0
#: Star spectrum as received by the IFS: ADU/s/nm at 1200 nm, falling as (1200 nm / lambda)^2
#: (a smooth blue star seen through a smooth throughput; ASSUMPTION, any smooth law would do).
STAR_FLUX_AT_1200_ADU_S_NM = 2.0e4
#: White lamp (SPECPOS, IFU flat) through the lenslets, ADU/s/nm per lenslet.
WHITE_LAMP_ADU_S_NM = 600.0
#: Each laser line, ADU/s per lenslet (all in the line).
LASER_ADU_S = 2.0e4
#: Detector-flat lamps (ADU/s/px, uniform on the detector): broad band and the four narrow bands.
DETECTOR_FLAT_ADU_S = {"BB": 1500.0, "NB1": 600.0, "NB2": 700.0, "NB3": 650.0, "NB4": 500.0}
#: ALC2 apodized Lyot coronagraph radius (mas) (N_ALC_YJH_S: 185 mas diameter).
ALC2_MASK_RADIUS_MAS = 92.5
#: Sampling of the micro-spectra along the trace (px): 0.5 px, well below the 0.85 px sigma.
SAMPLE_STEP_PX = 0.5
#: Order-sorting filter: light from 1 px before the first to 1 px after the last output channel
#: (soft edges, 0.3 px). ASSUMPTION.
BAND_EDGE_PX = 1.0
#: Per-lenslet response (IFU flat truth): normal, rms 4 %, clipped to [0.5, 1.5]. ASSUMPTION.
LENSLET_RESPONSE_RMS = 0.04


@dataclass(frozen=True)
class IfsCompanion:
    """A companion: separation (mas), PA (deg east of north), contrast and spectral type.

    ``contrast`` is the flux ratio companion / star at the continuum; ``spectrum`` ``flat``
    (constant contrast) or ``methane`` (contrast times
    :func:`hcdc.science.simulation.ifs.methane_spectrum`).
    """

    separation_mas: float
    pa_deg: float
    contrast: float
    spectrum: str = "flat"

    def contrast_at(self, wavelength_nm: np.ndarray | float) -> np.ndarray:
        """Contrast at ``wavelength_nm`` (nm)."""
        w = np.asarray(wavelength_nm, dtype=np.float64)
        if self.spectrum == "flat":
            return np.full(w.shape, self.contrast)
        if self.spectrum == "methane":
            return self.contrast * ifsim.methane_spectrum(w)
        raise ValueError(f"unknown companion spectrum {self.spectrum!r}; use flat or methane")


#: Default companions: a flat-spectrum one and a methane-absorbing one, inside the small field.
DEFAULT_COMPANIONS: tuple[IfsCompanion, ...] = (
    IfsCompanion(180.0, 60.0, 3e-4, "flat"),
    IfsCompanion(300.0, 230.0, 2e-4, "methane"),
)


@dataclass(frozen=True)
class IfsScale:
    """Detector size (square, px) and numbers of DITs and OBJECT files."""

    name: str
    size: int
    object_ndit: int
    center_ndit: int
    flux_ndit: int
    sky_ndit: int
    calib_ndit: int
    n_object_files: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)


SCALES: dict[str, IfsScale] = {
    "small": IfsScale("small", 1024, 2, 1, 1, 1, 1, 2),
    "medium": IfsScale("medium", 1536, 3, 2, 2, 1, 2, 4),
    "full": IfsScale("full", 2048, 8, 4, 6, 4, 10, 8),
}


def star_flux_adu_s_nm(
    wavelength_nm: np.ndarray | float, at_1200: float = STAR_FLUX_AT_1200_ADU_S_NM
) -> np.ndarray:
    """The simulated star's spectrum (ADU/s/nm) as the IFS receives it (before ND, coronagraph)."""
    return at_1200 * (1200.0 / np.asarray(wavelength_nm, dtype=np.float64)) ** 2


@dataclass
class SimulatedIfsFile(simulated_truth.SimulatedRawFile):
    """One written raw IFS file and its truth (``star_xy_mas``: per DIT, the star in the lenslet
    frame; angles at mid-DIT in deg, NaN for calibrations)."""

    comb: str
    star_xy_mas: np.ndarray
    lamp: str | None = None

    def setup_dict(self) -> dict[str, Any]:
        return {"comb": self.comb}

    def truth_dict(self) -> dict[str, Any]:
        return {"star_xy_mas": simulated_truth.json_array(self.star_xy_mas), "lamp": self.lamp}


@dataclass
class SimulatedIfsNight:
    """Everything :func:`simulate_ifs_night` wrote and the truth it injected."""

    out_dir: Path
    seed: int
    mode: geo.IfsModeOptics
    scale: IfsScale
    target: Target
    files: list[SimulatedIfsFile]
    companions: tuple[IfsCompanion, ...]
    detector: sim.DetectorModel
    grid: geo.LensletGrid
    lenslet_response: np.ndarray
    star_base_xy_mas: tuple[float, float]
    truth_json: Path | None = None
    truth_fits: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wavelengths_nm(self) -> np.ndarray:
        return geo.output_wavelengths_nm(self.mode.name)

    def select(
        self, dpr_type: str | None = None, lamp: str | None = None, dit: float | None = None
    ) -> list[SimulatedIfsFile]:
        """Files of a DPR TYPE / detector-flat lamp / DIT (None = any), in time order."""
        return simulated_truth.select_files(self.files, dpr_type, dit, lamp=lamp)

    def companion_truth(self) -> list[dict[str, Any]]:
        waves = self.wavelengths_nm
        return [
            {
                "separation_mas": c.separation_mas,
                "pa_deg": c.pa_deg,
                "contrast": c.contrast,
                "spectrum": c.spectrum,
                "contrast_per_channel": c.contrast_at(waves).tolist(),
            }
            for c in self.companions
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "mode": self.mode.name,
            "comb": self.mode.comb,
            "scale": self.scale.name,
            "detector_shape": list(self.scale.shape),
            "target": self.target.__dict__,
            "wavelengths_nm": self.wavelengths_nm.tolist(),
            "star_flux_adu_s_nm": star_flux_adu_s_nm(self.wavelengths_nm).tolist(),
            "companions": self.companion_truth(),
            "star_base_xy_mas": list(self.star_base_xy_mas),
            "geometry": {
                "lenslet_pitch_det_px": geo.LENSLET_PITCH_DET_PX,
                "lenslet_rotation_deg": geo.LENSLET_ROTATION_DEG,
                "lenslet_pitch_sky_mas": geo.LENSLET_PITCH_SKY_MAS,
                "spectrum_length_px": geo.SPECTRUM_LENGTH_PX,
                "spectral_psf_sigma_px": geo.SPECTRAL_PSF_SIGMA_PX,
                "dispersion_curvature": geo.DISPERSION_CURVATURE,
                "origin_xy": list(self.grid.origin_xy),
                "n_lenslets": len(self.grid),
                "wave_min_nm": self.mode.wave_min_nm,
                "wave_max_nm": self.mode.wave_max_nm,
                "lasers_nm": list(self.mode.lasers_nm),
            },
            "pixel_scale_mas": sc.IFS_PIXEL_SCALE_MAS,
            "pupil_offset_deg": sc.PUPIL_OFFSET_DEG,
            "instrument_offset_deg": sc.IFS_INSTRUMENT_OFFSET_DEG,
            "true_north_deg": sc.TRUE_NORTH_DEG,
            "gain_e_per_adu": self.detector.gain,
            "read_noise_e": self.detector.read_noise_e,
            "lamps": {
                "white_adu_s_nm": WHITE_LAMP_ADU_S_NM,
                "laser_adu_s": LASER_ADU_S,
                "detector_flat_adu_s": DETECTOR_FLAT_ADU_S,
            },
            "files": [f.to_dict() for f in self.files],
        } | self.extra


# ----------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Exposure(obs.PlannedExposure):
    dpr_tech: str
    comb: str  # INS2 COMB IFS
    lamp: str | None = None  # detector-flat lamp (BB, NB1..NB4)


#: Science template of the default night: (DPR TYPE, DIT s, ND), in observing order.
OBJECT_DIT_S, FLUX_DIT_S, FLUX_ND = 64.0, 4.0, "ND_2.0"


def _science_roles(scale: IfsScale) -> list[tuple[str, float, int, str]]:
    roles = [
        ("OBJECT,FLUX", FLUX_DIT_S, scale.flux_ndit, FLUX_ND),
        ("OBJECT,CENTER", OBJECT_DIT_S, scale.center_ndit, "OPEN"),
    ]
    roles += [("OBJECT", OBJECT_DIT_S, scale.object_ndit, "OPEN")] * scale.n_object_files
    roles += [
        ("OBJECT,CENTER", OBJECT_DIT_S, scale.center_ndit, "OPEN"),
        ("OBJECT,FLUX", FLUX_DIT_S, scale.flux_ndit, FLUX_ND),
        ("SKY", OBJECT_DIT_S, scale.sky_ndit, "OPEN"),
    ]
    return roles


def _plan(mode: geo.IfsModeOptics, scale: IfsScale, target: Target, night: str) -> list[_Exposure]:
    """The science template centred on the target's transit, then the morning calibrations."""
    plan: list[_Exposure] = []
    counters: dict[str, int] = {}

    def origfile(kind: str, when: str) -> str:
        counters[kind] = counters.get(kind, 0) + 1
        doy = Time(when).to_datetime().timetuple().tm_yday
        return f"SPHERE_IRDIFS_IFS_{kind}{doy:03d}_{counters[kind]:04d}.fits"

    roles = _science_roles(scale)
    duration = sum(ndit * (dit + DIT_OVERHEAD_S) + SETUP_GAP_S for _, dit, ndit, _ in roles)
    start = transit_time(target, night) - TimeDelta(duration / 2.0, format="sec")
    tpl_start = Time(start.isot[:19], scale="utc").isot[:19]
    t = start + TimeDelta(30.0, format="sec")
    previous = None
    for expno, (dpr_type, dit, ndit, nd) in enumerate(roles, start=1):
        if previous is not None:
            t = t + TimeDelta(FILE_GAP_S if (dpr_type, nd) == previous else SETUP_GAP_S, format="sec")
        date_obs, fram_utc, t = file_times(t, dit, ndit)
        previous = (dpr_type, nd)
        plan.append(
            _Exposure(
                dpr_catg="SCIENCE",
                dpr_type=dpr_type,
                dpr_tech="IFU",
                comb=mode.comb,
                dit=dit,
                ndit=ndit,
                nd=nd,
                date_obs=date_obs,
                fram_utc=fram_utc,
                tpl_id="SPHERE_irdifs_obs",
                tpl_name="IFS and IRDIS observations",
                tpl_start=tpl_start,
                tpl_expno=expno,
                tpl_nexp=len(roles),
                obs_id=2485392,
                obs_name=f"{target.name.replace(' ', '')}_IFS",
                prog_id="0104.C-9999(A)",
                origfile=origfile("OBS", date_obs),
            )
        )
    # Morning calibrations (calibration plan: darks at the calibration DIT and the science DITs,
    # detector flats per lamp at two DITs, then specpos, wave and IFU flat).
    t = Time(f"{Time(plan[0].date_obs).datetime.date().isoformat()}T10:30:00", scale="utc")
    if t < Time(plan[-1].fram_utc):
        t = Time(plan[-1].fram_utc) + TimeDelta(3600.0, format="sec")
    suffix = mode.name  # CAL_<lamp>_<YJ|YJH>
    lamp_comb = {
        "BB": "CAL_BB_2",
        "NB1": "CAL_NB1_1",
        "NB2": "CAL_NB2_1",
        "NB3": "CAL_NB3_1",
        "NB4": "CAL_NB4_2",
    }
    calibs: list[tuple[str, str, str, float, str, str, str, str | None]] = [
        ("DARK", "IMAGE", mode.comb, CALIB_DIT_S, "SPHERE_irdifs_cal_dark", "IFS darks", "CAL_DARK", None),
        (
            "DARK,BACKGROUND",
            "IMAGE",
            mode.comb,
            FLUX_DIT_S,
            "SPHERE_irdifs_cal_dark",
            "IFS darks",
            "CAL_DARK",
            None,
        ),
        (
            "DARK,BACKGROUND",
            "IMAGE",
            mode.comb,
            OBJECT_DIT_S,
            "SPHERE_irdifs_cal_dark",
            "IFS darks",
            "CAL_DARK",
            None,
        ),
    ]
    for lamp in IFS_LAMPS_BY_MODE[mode.hcdc_mode]:
        for dit in (CALIB_DIT_S, FLAT_LONG_DIT_S):
            calibs.append(
                (
                    "FLAT,LAMP",
                    "IMAGE",
                    f"{lamp_comb[lamp]}_{suffix}",
                    dit,
                    "SPHERE_ifs_cal_dflat",
                    "IFS detector flat field",
                    "CAL_DFLAT",
                    lamp,
                )
            )
    calibs += [
        (
            "SPECPOS,LAMP",
            "IFU",
            mode.comb,
            CALIB_DIT_S,
            "SPHERE_irdifs_cal_specpos",
            "IFS spectra positions",
            "CAL_SPECPOS",
            None,
        ),
        (
            "WAVE,LAMP",
            "IFU",
            mode.comb,
            CALIB_DIT_S,
            "SPHERE_irdifs_cal_wave",
            "IFS spectra wavelength calibration",
            "CAL_WAVE",
            None,
        ),
        (
            "FLAT,LAMP",
            "IFU",
            mode.comb,
            CALIB_DIT_S,
            "SPHERE_irdifs_cal_ifuflat",
            "IFS IFU flat field",
            "CAL_IFUFLAT",
            None,
        ),
    ]
    for dpr_type, tech, comb, dit, tpl_id, tpl_name, kind, lamp in calibs:
        date_obs, fram_utc, t = file_times(t + TimeDelta(FILE_GAP_S, format="sec"), dit, scale.calib_ndit)
        plan.append(
            _Exposure(
                dpr_catg="CALIB",
                dpr_type=dpr_type,
                dpr_tech=tech,
                comb=comb,
                dit=dit,
                ndit=scale.calib_ndit,
                nd="ND_1.0" if dpr_type == "WAVE,LAMP" else "OPEN",
                date_obs=date_obs,
                fram_utc=fram_utc,
                tpl_id=tpl_id,
                tpl_name=tpl_name,
                tpl_start=t.isot[:19],
                tpl_expno=1,
                tpl_nexp=1,
                obs_id=200313600,
                obs_name="Calibration",
                prog_id="60.A-9255(A)",
                origfile=origfile(kind, date_obs),
                lamp=lamp,
            )
        )
    return plan


# ----------------------------------------------------------------------------------------------
# Headers


def _irdis_filter_keywords(iflt: str) -> dict[str, tuple[Any, str]]:
    """The IRDIS half of IRDIFS: INS COMB IFLT and the IRDIS filter wheels (BB_H, DB_H23 or
    DB_K12; the real IFS headers: BB_H -> B_H/CLEAR, DB_NDH23 -> B_ND-H/D_H23)."""
    wheels = {"BB_H": ("B_H", "CLEAR"), "DB_H23": ("B_H", "D_H23"), "DB_K12": ("B_Ks", "D_K12")}
    if iflt not in wheels:
        raise ValueError(f"unknown IRDIS filter combination {iflt!r} for IRDIFS; use {', '.join(wheels)}")
    cfw, dfw = wheels[iflt]
    return {
        "INS COMB IFLT": (iflt, "Infra-Red filter combination name."),
        "INS1 FILT NAME": (cfw, "IRDIS filter name."),
        "INS1 OPTI2 NAME": (dfw, "IRDIS Dual Filter."),
    }


#: DPR TYPE (and tech) -> (INS COMB ICOR, IRDIS Lyot stop, INS4 OPTI11 NAME, INS4 SHUT ST).
#: Science: the real IRDIFS headers (ALC2); WAVE,LAMP: the real WAVE,LAMP headers; DARK and
#: DARK,BACKGROUND: ESO QC (IFS dark = N_NS_OPAQUE, background = N_NS_CLEAR).
_OPTICS: dict[str, tuple[str, str, str, bool]] = {
    "SCIENCE": ("N_ALC_YJH_S", "ST_ALC2", "ALC2", True),
    "DARK": ("N_NS_OPAQUE", "CLOSED", "OPEN", False),
    "DARK,BACKGROUND": ("N_NS_CLEAR", "OPEN", "OPEN", False),
    "WAVE,LAMP": ("N_NS_OPAQUE", "CLOSED", "OPEN", False),
    "SPECPOS,LAMP": ("N_NS_OPAQUE", "CLOSED", "OPEN", False),
    "FLAT,LAMP": ("N_NS_OPAQUE", "CLOSED", "OPEN", False),
}

#: WAVE,LAMP lasers as in the real header: (INS4 LAMPn index, id, comment).
_LASER_CARDS = (
    (5, "CBL3", "Laser 980nm."),
    (8, "CBL6", "Laser 1080nm."),
    (3, "CBL1", "Laser 1310nm."),
    (4, "CBL2", "Laser 1550nm."),
)


def _build_header(
    exp: _Exposure,
    mode: geo.IfsModeOptics,
    target: Target,
    shape: tuple[int, int],
    sky: obs.FileConditions,
    seed: int,
    irdis_filter: str | None = None,
    legacy_drot2: bool = False,
) -> fits.Header:
    """Primary header of one raw IFS file: keyword names, formats and values as the real ones.

    ``sky.ambient``: seeing (start, end), tau0, wind, temperature, pressure, humidity, IWV and the
    altitude at the end (science files only, as in the real calibration headers)."""
    science = exp.dpr_catg == "SCIENCE"
    h = hdr.primary_header(exp, target, observer=False)
    icor, lyot, opti11, shutter = _OPTICS["SCIENCE" if science else exp.dpr_type]
    cards: dict[str, tuple[Any, str]] = {}
    # SPARTA loops: closed on sky (IR loop open, sphere.md a.7), idle for calibrations (real
    # WAVE,LAMP headers, with DTTS2)
    for key in ("HOLOOP", "PUPLOOP", "TTLOOP"):
        cards[f"AOS {key} STATE"] = ("CLOSED_LOOP" if science else "IDLE", "SPARTA loop state")
    cards["AOS IRLOOP STATE"] = ("OPEN_LOOP" if science else "IDLE", "SPARTA loop state")
    cards["AOS IRWFS MODE"] = ("DTTS3" if science else "DTTS2", "SPARTA Infrared WFS detector mode")
    cards["AOS VISWFS MODE"] = ("GAIN_1000_FREQ_1380Hz", "SPARTA Visible WFS dete")
    cards.update(
        hdr.detector_cards(
            exp, detector="IFS", gain_e_per_adu=sc.IFS_GAIN_E_PER_ADU, shape=shape, pixel_spacing_m=1.8e-05
        )
    )
    cards.update(
        {
            "DPR CATG": (exp.dpr_catg, "Observation category"),
            "DPR TECH": (exp.dpr_tech, "Observation technique"),
            "DPR TYPE": (exp.dpr_type, "Observation type"),
            "INS COMB ICOR": (icor, "Infra-Red coronograph combination n"),
            "INS COMB POLA": ("", "Polarisation combination name."),
            "INS COMB VCOR": ("V_NC_WF", "Visible coronograph combination name."),
            "INS1 MODE": (mode.irdis_mode, "Instrument mode used."),
            "INS1 OPTI1 NAME": (lyot, "IRDIS Lyot stop."),
            "INS2 CAL": ("OFF", "Calibration lamps"),
            "INS2 COMB IFS": (exp.comb, "IFS device combination"),
            "INS2 FILT ID": ("OPEN", "Filter unique id."),
            "INS2 FILT NAME": ("OPEN", "Name of the IFS ND filter."),
            "INS2 MODE": (mode.ins2_mode, "Instrument mode used."),
            "INS2 OPTI2 ID": (mode.prism_id, "OPTIi unique ID."),
            "INS2 OPTI2 NAME": (mode.prism_name, "IFS disperser selector."),
            "INS2 SHUT ST": (True, "Shutter open."),
            "INS4 COMB ROT": ("PUPIL" if science else "CAL_ZENITH", "Assembly for derotator and ADC modes"),
        }
    )
    cards.update(_irdis_filter_keywords(irdis_filter or mode.irdis_filter))
    cards["INS1 PAC X"] = (0.0, "[um] X-Axis absolute position on the detec")
    cards["INS1 PAC Y"] = (0.0, "[um] Y-Axis absolute position on the detect")
    if science:
        # INS4 DROT2 = TEL ALT / 2 + 180 as in the real pupil-tracking headers (legacy_drot2:
        # alt + 144.5, simulate-ifs <= 1.1)
        begin = pupil_drot2_deg(sky.alt_az_airm[0], legacy_drot2)
        end = pupil_drot2_deg(sky.ambient["alt_end"], legacy_drot2)
        cards["INS4 DROT2 MODE"] = ("ELEV", "Derotator mode.")
    else:
        begin = end = 0.0
        cards["INS4 DROT2 MODE"] = ("STAT", "Derotator mode.")
    cards["INS4 DROT2 BEGIN"] = (round(begin, 4), "[deg] Position angle at start.")
    cards["INS4 DROT2 END"] = (round(end, 4), "[deg] Position angle at end.")
    # IRDIS half-wave plate 2 out of the beam, its rotator parked (real IRDIFS headers)
    cards["INS4 DROT3 BEGIN"] = (152.15, "[deg] Position angle at start.")
    cards["INS4 DROT3 END"] = (152.15, "[deg] Position angle at end.")
    cards["INS4 DROT3 MODE"] = ("STAT", "Half-Wave Plate 2 rotation mode.")
    cards["INS4 OPTI8 NAME"] = ("OPEN", "Half-Wave Plate 2 selector.")
    cards.update(hdr.derotator_pointing_cards(sky.radec_of_date))
    cards["INS4 FILT2 ID"] = ("OPEN" if exp.nd == "OPEN" else f"FILT_{exp.nd}", "Filter unique id.")
    cards["INS4 FILT2 NAME"] = (exp.nd, "NIR Neutral Density filters.")
    cards["INS4 MODE"] = (mode.ins4_mode, "Instrument mode used.")
    cards["INS4 OPTI10 NAME"] = ("APO1" if science else "OPEN", "Apodizers wheel.")
    cards["INS4 OPTI11 NAME"] = (opti11, "NIR coronagraphs wheel.")
    cards["INS4 OPTI13 NAME"] = (mode.dichroic, "IRDIS-IFS selector.")
    cards["INS4 SHUT ST"] = (shutter, "Shutter open [T] or closed [F].")
    if exp.dpr_type == "WAVE,LAMP":
        cards["INS4 COMB CAL"] = ("SPECTR_ISPH_CAL_WAVE_IFS", "Calibration devices in")
        for (index, lamp_id, comment), _line in zip(_LASER_CARDS, mode.lasers_nm, strict=False):
            cards[f"INS4 LAMP{index} ID"] = (lamp_id, "Lamp ID.")
            cards[f"INS4 LAMP{index} NAME"] = (lamp_id, comment)
            cards[f"INS4 LAMP{index} ST"] = (True, "Lamp activated.")
    cards.update(hdr.observation_block_cards(exp))
    if science:
        cards.update(hdr.science_target_cards(target, "x"))
    cards["SEQ ARM"] = ("IFS", "Name of the sub-system.")
    if science:
        ifs_tel_cards = {
            **hdr.paranal_site_cards(),
            "TEL AMBI IWV END": (round(sky.ambient["iwv"], 2), "Integrated Water Vapor"),
            "TEL AMBI IWV START": (round(sky.ambient["iwv"], 2), "Integrated Water Vapor"),
            "TEL IA FWHM": (round(sky.ambient["ia_fwhm"], 2), "[arcsec] Delivered seeing (airmass"),
        }
        cards.update(hdr.telescope_cards(target, sky, ifs_tel_cards))
    cards.update(hdr.template_cards(exp))
    return hdr.close_header(
        h,
        cards,
        date_obs=exp.date_obs,
        simulator="hcdc.instruments.sphere.ifs",
        seed=seed,
        plain={"PIXSCAL": (sc.IFS_PIXEL_SCALE_MAS, "[mas/pixel] IFS pixel scale")},
    )


# ----------------------------------------------------------------------------------------------
# Pixels


@dataclass
class _Model:
    """Shared state of one simulated night."""

    mode: geo.IfsModeOptics
    scale: IfsScale
    detector: sim.DetectorModel
    grid: geo.LensletGrid
    response: np.ndarray  # (n_lenslets,) lenslet throughput (IFU flat truth)
    illumination: np.ndarray  # 0 on the reference pixels
    offsets_px: np.ndarray  # (m,) trace offsets of the spectral samples
    sample_nm: np.ndarray  # (m,) their wavelengths
    sample_width_nm: np.ndarray  # (m,) their widths x the order-sorting filter
    speckles: Any
    companions: tuple[IfsCompanion, ...]
    star_base_xy_mas: np.ndarray
    drift_mas_per_hour: np.ndarray
    jitter_mas: float
    t_ref: Time
    crosstalk: CrosstalkModel | None = None  # spectral cross-talk of all light through the IFU
    #: True: companions in hcdc's old sense (``simulate-ifs`` 1.0, 1.1); False: the physical sense
    #: (:func:`science_scene`)
    legacy_sky_sense: bool = False


def _samples(mode: geo.IfsModeOptics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace offsets (px), wavelengths (nm) and effective widths (nm, x filter) of the samples."""
    half = geo.SPECTRUM_LENGTH_PX / 2.0 + BAND_EDGE_PX + 1.5
    offsets = np.arange(-half, half + 1e-9, SAMPLE_STEP_PX)
    waves = mode.wavelength_at_offset(offsets)
    edge = geo.SPECTRUM_LENGTH_PX / 2.0 + BAND_EDGE_PX
    band = 0.25 * (1.0 + np.tanh((offsets + edge) / 0.3)) * (1.0 + np.tanh((edge - offsets) / 0.3))
    return offsets, waves, mode.dispersion_nm_per_px(waves) * SAMPLE_STEP_PX * band


def _ifu_light(model: _Model, density_adu_s_nm: np.ndarray) -> np.ndarray:
    """Detector image (ADU/s, before the flat) of lenslet spectra (n, m) in ADU/s/nm."""
    flux = density_adu_s_nm * model.sample_width_nm[None, :] * model.response[:, None]
    light = ifsim.render_microspectra(
        model.scale.shape, model.grid.trace_xy, model.offsets_px, flux, geo.SPECTRAL_PSF_SIGMA_PX
    )
    return _with_crosstalk(light, model) * model.illumination


def _with_crosstalk(light: np.ndarray, model: _Model) -> np.ndarray:
    """The micro-spectra image with the spectral cross-talk (none when the model has none)."""
    return light if model.crosstalk is None else add_crosstalk(light, model.crosstalk)


def _laser_light(model: _Model) -> np.ndarray:
    """WAVE,LAMP: each laser line as one monochromatic sample per lenslet."""
    lines = np.asarray(model.mode.lasers_nm)
    flux = np.full((len(model.grid), lines.size), LASER_ADU_S) * model.response[:, None]
    light = ifsim.render_microspectra(
        model.scale.shape,
        model.grid.trace_xy,
        model.mode.trace_offset_px(lines),
        flux,
        geo.SPECTRAL_PSF_SIGMA_PX,
    )
    return _with_crosstalk(light, model) * model.illumination


def _render(
    exp: _Exposure, model: _Model, radec: tuple[float, float], seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Raw cube (ndit, ny, nx) float32 and per-DIT truth of one planned exposure."""
    rng = file_rng(seed, exp.date_obs)
    ny, nx = model.scale.shape
    start, mid, end = dit_times(exp.date_obs, exp.fram_utc, exp.ndit, exp.dit, DIT_DELAY_S)
    ra, dec = radec
    parang = parallactic_angle(mid, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
    derot = derotation_angles(parang, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG, sc.IFS_INSTRUMENT_OFFSET_DEG)
    hours = (mid - model.t_ref).to_value(u.hour)
    star_xy = model.star_base_xy_mas[None, :] + hours[:, None] * model.drift_mas_per_hour[None, :]
    star_xy = star_xy + rng.normal(0.0, model.jitter_mas, star_xy.shape)
    cube = np.empty((exp.ndit, ny, nx), dtype=np.float32)
    static_light = None
    if exp.dpr_type == "SPECPOS,LAMP" or (exp.dpr_type == "FLAT,LAMP" and exp.dpr_tech == "IFU"):
        static_light = _ifu_light(
            model, np.full((len(model.grid), model.sample_nm.size), WHITE_LAMP_ADU_S_NM)
        )
    elif exp.dpr_type == "WAVE,LAMP":
        static_light = _laser_light(model)
    elif exp.dpr_type == "FLAT,LAMP":
        static_light = DETECTOR_FLAT_ADU_S[exp.lamp or "BB"] * model.illumination
    elif exp.dpr_type in {"DARK", "DARK,BACKGROUND"}:
        static_light = np.zeros((ny, nx))
    for k in range(exp.ndit):
        if static_light is not None:
            light = static_light
        else:
            light = _science_light(
                exp, model, tuple(star_xy[k]), float(derot[k]), (mid[k] - model.t_ref).to_value(u.s)
            )
        cube[k] = model.detector.readout(light, exp.dit, rng)
    science = exp.dpr_catg == "SCIENCE"
    nan = np.full(exp.ndit, np.nan)
    truth = {
        "mjd_mid": mid.mjd,
        "parang": parang if science else nan,
        "derot": derot if science else nan,
        "star_xy_mas": star_xy if science else np.full_like(star_xy, np.nan),
        "parang_start_end": (
            float(parallactic_angle(start[:1], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
            float(parallactic_angle(end[-1:], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
        ),
    }
    return cube, truth


def science_scene(
    kind: str,
    model_companions: tuple[IfsCompanion, ...],
    star_xy_mas: tuple[float, float],
    derot_deg: float,
    time_s: float,
    nd: str,
    speckles: Any,
    legacy_sky_sense: bool = False,
) -> ifsim.FocalPlaneScene:
    """The focal plane of one science DIT (lenslet frame; companions turned by ``derot_deg``).

    ``derot_deg`` is the DIT's derotation angle (vlt-sphere sense, the Level 1 ``DEROT``): turning
    the lenslet frame (the IFS cube's frame) counter-clockwise by it puts north up and east left,
    as on the real, non-mirrored instrument (:func:`hcdc.science.orientation.rotation_from_derotation`;
    :func:`hcdc.science.simulation.irdis.companion_detector_xy` with the IFS anamorphism).
    ``legacy_sky_sense=True``: hcdc's old, opposite sense (``simulate-ifs`` 1.0 and 1.1).
    """
    turn = derot_deg if legacy_sky_sense else float(rotation_from_derotation(derot_deg))
    companions = []
    for c in model_companions:
        x, y = sim.companion_detector_xy(star_xy_mas, c.separation_mas, c.pa_deg, turn, sc.IFS_ANAMORPHISM_XY)
        companions.append((x, y, c.contrast_at))
    return ifsim.FocalPlaneScene(
        kind=kind,
        star_xy_mas=star_xy_mas,
        star_flux=star_flux_adu_s_nm,
        telescope_diameter_m=sc.TELESCOPE_DIAMETER_M,
        speckles=speckles,
        time_s=time_s,
        nd_transmission=(lambda w: sc.nd_transmission(nd, w)),
        mask_radius_mas=ALC2_MASK_RADIUS_MAS,
        waffle_distance_ld=sc.WAFFLE_DISTANCE_LD,
        waffle_orientation_deg=sc.waffle_orientation_deg("x", "IFS"),
        companions=companions,
    )


def _science_light(
    exp: _Exposure, model: _Model, star_xy: tuple[float, float], derot: float, t_s: float
) -> np.ndarray:
    kind = {"OBJECT": "coronagraphic", "OBJECT,CENTER": "center", "OBJECT,FLUX": "flux", "SKY": None}[
        exp.dpr_type
    ]
    if kind is None:  # SKY: the sky and instrument background only (negligible in YJ(H))
        return np.zeros(model.scale.shape)
    scene = science_scene(
        kind, model.companions, star_xy, derot, t_s, exp.nd, model.speckles, model.legacy_sky_sense
    )
    density = ifsim.lenslet_spectra(
        scene, model.grid.sky_xy_mas, model.sample_nm, geo.LENSLET_PITCH_SKY_MAS**2 * math.sqrt(3.0) / 2.0
    )
    return _ifu_light(model, density)


def _check_companions(
    companions: tuple[IfsCompanion, ...], grid: geo.LensletGrid, star_xy: np.ndarray
) -> None:
    """Refuse companions outside the lenslet field (clear error, no silent clipping)."""
    sky = grid.sky_xy_mas - star_xy[None, :]
    # radius of the largest circle around the star covered by lenslets, less 2 lambda/D at 1.2 um
    angles = np.arctan2(sky[:, 1], sky[:, 0])
    radii = np.hypot(sky[:, 0], sky[:, 1])
    room = min(radii[(angles >= a) & (angles < a + 0.26)].max() for a in np.arange(-np.pi, np.pi, 0.26))
    room -= 2.0 * float(ifsim.lambda_over_d_mas(1200.0, sc.TELESCOPE_DIAMETER_M))
    for c in companions:
        c.contrast_at(1000.0)  # validates the spectrum name
        if c.separation_mas > room:
            raise ValueError(
                f"companion at {c.separation_mas} mas does not fit in this scale's lenslet field "
                f"(at most {room:.0f} mas from the star); use a larger scale or a smaller separation"
            )


# ----------------------------------------------------------------------------------------------
# Entry point


def simulate_ifs_night(
    out_dir: str | Path,
    *,
    mode: str = "YJ",
    seed: int = 0,
    scale: str = "small",
    companions: tuple[IfsCompanion, ...] | list[IfsCompanion] | None = None,
    target: Target = FIFTY_ONE_ERI,
    night: str = "2018-11-30",
    colon_in_names: bool = True,
    progress: Any = None,
    speckle_level: float = 1.0,
    crosstalk: bool = True,
    irdis_filter: str | None = None,
    legacy_sky_sense: bool = False,
    ao_telemetry: bool | simulate_ao.AoTelemetrySpec = False,
) -> SimulatedIfsNight:
    """Write a night of raw IFS files of ``mode`` (YJ or YJH) into ``out_dir``; return the truth.

    Companions turn with the sky as on the real instrument (:func:`science_scene`);
    ``legacy_sky_sense=True`` keeps hcdc's old, opposite sense and writes ``INS4 DROT2 = alt +
    144.5`` (``simulate-ifs`` 1.0 and 1.1; real headers and the default: ``alt / 2 + 180``).

    ``scale``: 'small' (1024 x 1024 px, ~4 400 spectra, a field of +-370 mas: the waffle spots
    are inside only at the blue end), 'medium' (1536^2) or 'full' (2048^2, ~18 300 spectra, real
    NDITs). ``companions`` default to :data:`DEFAULT_COMPANIONS`. Deterministic for a seed.
    ``crosstalk``: draw the spectral cross-talk (:data:`hcdc.instruments.sphere.ifs.geometry.
    CROSSTALK`) on every frame whose light passes the lenslets (science, SPECPOS, WAVE, IFU flat;
    not the detector flats); False gives the frames of the simulator before cross-talk existed.
    ``irdis_filter``: the IRDIS half's ``INS COMB IFLT`` written in the headers (default the
    mode's: BB_H with YJ, DB_K12 with YJH; DB_H23 for an IRDIFS night whose IRDIS files are
    dual-band H2/H3, :func:`hcdc.instruments.sphere.irdifs.simulate_irdifs_night`).
    ``ao_telemetry`` (True or a :class:`~hcdc.instruments.sphere.irdis.simulate_ao.AoTelemetrySpec`):
    also write SPARTA ``OBJECT,AO`` files over the science templates, drawn as for IRDIS
    (:mod:`hcdc.instruments.sphere.irdis.simulate_ao`, own generator: the IFS frames are
    byte-identical with or without); the IFS speckles and ambient header keywords do **not**
    follow them (unlike IRDIS). The truth is in ``extra["ao_telemetry"]``.
    """
    optics = geo.ifs_mode_optics(mode)
    _irdis_filter_keywords(irdis_filter or optics.irdis_filter)  # a clear error before any work
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    if not speckle_level >= 0.0:
        raise ValueError(f"speckle_level must be >= 0; got {speckle_level}")
    scale_obj = SCALES[scale]
    companions = tuple(DEFAULT_COMPANIONS if companions is None else companions)
    out = Path(out_dir)
    root = np.random.default_rng(seed)
    detector_seed, speckle_seed, star_seed, response_seed = (int(x) for x in root.integers(0, 2**31, 4))
    shape = scale_obj.shape
    detector = sim.make_detector(
        shape,
        np.random.default_rng(detector_seed),
        field_width=shape[1],
        gain=sc.IFS_GAIN_E_PER_ADU,
        read_noise_e=READ_NOISE_E,
    )
    srng = np.random.default_rng(star_seed)
    # lenslet (0, 0) near the detector centre; the star a little off it (coronagraph centring)
    origin = (np.array(shape[::-1], dtype=np.float64) - 1.0) / 2.0 + srng.uniform(-3.0, 3.0, 2)
    grid = geo.lenslet_grid(shape, origin_xy=(float(origin[0]), float(origin[1])))
    star_base = srng.uniform(-6.0, 6.0, 2)
    response = np.clip(
        np.random.default_rng(response_seed).normal(1.0, LENSLET_RESPONSE_RMS, len(grid)), 0.5, 1.5
    )
    _check_companions(companions, grid, star_base)
    r_env, level_env = NACO_LIKE_ENVELOPE
    speckles = make_evolving_speckles(
        np.random.default_rng(speckle_seed),
        envelope=(r_env, tuple(max(v * speckle_level, 1e-300) for v in level_env)),
    )
    illumination = np.zeros(shape)
    b = geo.IFS_REFERENCE_PIXELS
    illumination[b:-b, b:-b] = 1.0
    offsets, sample_nm, widths = _samples(optics)
    plan = _plan(optics, scale_obj, target, night)
    telemetry = None
    if ao_telemetry:
        ao_spec = ao_telemetry if isinstance(ao_telemetry, simulate_ao.AoTelemetrySpec) else None
        # own generator, as for IRDIS: every other draw (and so the IFS frames) stays the same
        telemetry = simulate_ao.simulate_telemetry(
            np.random.default_rng([seed, 15]), simulate_ao.windows_from_plan(plan), ao_spec
        )
    model = _Model(
        mode=optics,
        scale=scale_obj,
        detector=detector,
        grid=grid,
        response=response,
        illumination=illumination,
        offsets_px=offsets,
        sample_nm=sample_nm,
        sample_width_nm=widths,
        speckles=speckles,
        companions=companions,
        star_base_xy_mas=star_base,
        drift_mas_per_hour=srng.uniform(-2.0, 2.0, 2),
        jitter_mas=0.1,
        t_ref=Time(plan[0].date_obs, scale="utc"),
        crosstalk=geo.CROSSTALK if crosstalk else None,
        legacy_sky_sense=legacy_sky_sense,
    )
    out.mkdir(parents=True, exist_ok=True)
    conditions = obs.AmbientConditions(np.random.default_rng(int(root.integers(0, 2**31))))
    files: list[SimulatedIfsFile] = []
    for i, exp in enumerate(plan):
        t0, t1 = Time(exp.date_obs, scale="utc"), Time(exp.fram_utc, scale="utc")
        ra_used, dec_used = hdr.pointing_as_written(target, t0)
        cube, truth = _render(exp, model, (ra_used, dec_used), seed)
        sky = obs.file_conditions(
            t0, t1, (ra_used, dec_used), truth["parang_start_end"], conditions, water_vapour=True
        )
        header = _build_header(exp, optics, target, shape, sky, seed, irdis_filter, legacy_sky_sense)
        path = out / archive_name(exp.date_obs, colon=colon_in_names)
        fits.PrimaryHDU(data=cube, header=header).writeto(path, overwrite=True)
        files.append(
            SimulatedIfsFile(
                **simulated_truth.raw_file_fields(path, exp, truth),
                dpr_tech=exp.dpr_tech,
                comb=exp.comb,
                mode=optics.hcdc_mode,
                star_xy_mas=np.asarray(truth["star_xy_mas"]),
                lamp=exp.lamp,
            )
        )
        if progress is not None:
            progress(i + 1, len(plan), path.name)
    if telemetry is not None:
        simulate_ao.write_telemetry_files(
            out, telemetry, target, lambda date_obs: archive_name(date_obs, colon=colon_in_names)
        )
    result = SimulatedIfsNight(
        out_dir=out,
        seed=seed,
        mode=optics,
        scale=scale_obj,
        target=target,
        files=files,
        companions=companions,
        detector=detector,
        grid=grid,
        lenslet_response=response,
        star_base_xy_mas=(float(star_base[0]), float(star_base[1])),
        extra={
            "speckle_seed": speckle_seed,
            "speckle_level": speckle_level,
            "crosstalk": geo.CROSSTALK.to_dict() if crosstalk else None,
            **({"ao_telemetry": telemetry.to_dict()} if telemetry is not None else {}),
        },
    )
    _write_truth(result)
    return result


def _write_truth(night: SimulatedIfsNight) -> None:
    """simulation_truth.json and simulation_truth.fits (detector maps, lenslet table, spectra)."""
    truth_fits = simulated_truth.write_truth_json(night)
    hdus = simulated_truth.detector_map_hdus(night.detector)
    g = night.grid
    hdus.append(
        fits.BinTableHDU.from_columns(
            [
                fits.Column("I", "J", array=g.ij[:, 0]),
                fits.Column("J", "J", array=g.ij[:, 1]),
                fits.Column("U", "D", array=g.uv[:, 0]),
                fits.Column("V", "D", array=g.uv[:, 1]),
                fits.Column("X_MAS", "D", unit="mas", array=g.sky_xy_mas[:, 0]),
                fits.Column("Y_MAS", "D", unit="mas", array=g.sky_xy_mas[:, 1]),
                fits.Column("TRACE_X", "D", unit="pix", array=g.trace_xy[:, 0]),
                fits.Column("TRACE_Y", "D", unit="pix", array=g.trace_xy[:, 1]),
                fits.Column("RESPONSE", "D", array=night.lenslet_response),
            ],
            name="LENSLETS",
        )
    )
    waves = night.wavelengths_nm
    hdus.append(fits.ImageHDU(waves, name="WAVELENGTHS"))
    hdus.append(fits.ImageHDU(star_flux_adu_s_nm(waves), name="STAR_FLUX"))
    hdus.append(
        fits.ImageHDU(
            np.array([c.contrast_at(waves) for c in night.companions]).reshape(-1, waves.size),
            name="COMPANION_CONTRAST",
        )
    )
    hdus[0].header["HCDCSEED"] = night.seed
    hdus[0].header["IFSMODE"] = night.mode.name
    hdus[0].header["COMMENT"] = "BADPIX bits: 1 hot, 2 dead, 4 non-linear; WAVELENGTHS in nm"
    fits.HDUList(hdus).writeto(truth_fits, overwrite=True)


def read_ifs_truth(out_dir: str | Path) -> tuple[dict[str, Any], fits.HDUList]:
    """The truth of a simulated IFS night: the JSON content and the opened truth FITS file
    (caller closes it). Raises ``FileNotFoundError`` naming the missing file."""
    folder = Path(out_dir)
    json_path, fits_path = folder / "simulation_truth.json", folder / "simulation_truth.fits"
    for path in (json_path, fits_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no simulation truth here (not written by simulate_ifs_night?)")
    return json.loads(json_path.read_text()), fits.open(fits_path)
