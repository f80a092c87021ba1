"""Write a night of realistic raw SPHERE/IRDIS files (DBI and CI, pupil tracking) with known truth.

:func:`simulate_irdis_night` writes, for each science sequence (by default DB_H23 dual-band
imaging and BB_H classical imaging of 51 Eri observed around transit over Paranal):

* the science template: OBJECT,FLUX (through a CPI neutral density), OBJECT,CENTER (waffle
  spots), coronagraphic OBJECT cubes, a second OBJECT,CENTER and OBJECT,FLUX, and a SKY;
* the calibrations of the next morning: DARK (Lyot stop closed) and DARK,BACKGROUND (open) at
  every DIT used, FLAT,LAMP at five lamp fluxes.

Files are ``NDIT x ny x nx`` float32 cubes in ADU with both IRDIS fields side by side (left =
first filter of the combination, right = second), named like the ESO archive's files
(``SPHER.YYYY-MM-DDThh:mm:ss.sss.fits``) and carrying the ESO keywords the reduction and the
archive read (same names and value vocabularies as real SPHERE headers). Pixel content follows
:mod:`hcdc.science.simulation.irdis`; SPHERE facts come from
:mod:`hcdc.instruments.sphere.constants`; per-DIT times and parallactic angles from
:mod:`hcdc.science.calibration.timing`, so that ``TEL PARANG START/END`` are the parallactic
angles at the start of the first DIT and the end of the last DIT of the timing model.

Everything is deterministic from ``seed``. ``scale`` shrinks the detector (and every detector
position: centre guesses, dead zones) but not the optics: lambda/D in pixels, the waffle-spot
radius and companion separations in pixels keep their real values, so a small frame holds a
smaller field of view.
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
from hcdc.instruments.sphere import simulated_headers as hdr
from hcdc.instruments.sphere.irdis import mueller, simulate_ao
from hcdc.instruments.sphere.irdis.dpi import HWP_ENCODER_OFFSET_DEG
from hcdc.instruments.sphere.observing import (
    DIT_DELAY_S,
    DIT_OVERHEAD_S,
    AmbientConditions,
    FileConditions,
    PlannedExposure,
    alt_az_airmass,
    file_conditions,
)
from hcdc.instruments.sphere.observing import file_rng as _file_rng
from hcdc.instruments.sphere.observing import file_times as _file_times
from hcdc.instruments.sphere.observing import transit_time as _transit_time
from hcdc.instruments.sphere.simulated_headers import archive_name, pack_sexagesimal
from hcdc.instruments.sphere.simulated_truth import (
    SimulatedRawFile,
    detector_map_hdus,
    json_array,
    raw_file_fields,
    select_files,
    write_truth_json,
)
from hcdc.science.calibration.timing import (
    derotation_angles,
    dit_times,
    parallactic_angle,
)
from hcdc.science.geometry import mas_to_px
from hcdc.science.orientation import rotation_from_derotation
from hcdc.science.polarimetry.stokes import HWP_ANGLES_DEG, HWP_STOKES
from hcdc.science.simulation import dpi as dpi_sim
from hcdc.science.simulation import irdis as sim
from hcdc.science.simulation.dpi import PolarisedRing
from hcdc.science.simulation.speckles import (
    NACO_LIKE_ENVELOPE,
    NACO_LIKE_WITH_LOW_ORDER,
    EvolvingSpeckles,
    make_evolving_speckles,
)

__all__ = [
    "Companion",
    "Target",
    "SequenceSpec",
    "SimulationScale",
    "SCALES",
    "DEFAULT_COMPANIONS",
    "DEFAULT_SEQUENCES",
    "FIFTY_ONE_ERI",
    "SimulatedFile",
    "SimulatedNight",
    "flux_frame_scenes",
    "band_labels",
    "simulate_irdis_night",
    "archive_name",
    "pack_sexagesimal",
    "read_simulation_truth",
]

#: Gap between two files of one template (s): 12.5 s between the real IFS files.
FILE_GAP_S = 12.0
#: Extra time for a configuration change inside a template (ND, waffle, sky offset), s.
SETUP_GAP_S = 60.0
#: Simulated read noise (electrons rms per DIT). Assumed typical H2RG value, not a SPHERE figure.
READ_NOISE_E = 10.0
#: Radius of the ALC2 apodized Lyot coronagraph mask (mas): 185 mas diameter (N_ALC_YJH_S).
ALC2_MASK_RADIUS_MAS = 92.5
#: INS4 DROT2 BEGIN - TEL ALT (deg) in pupil tracking as ``simulate-irdis`` 1.0 and ``simulate-ifs``
#: <= 1.1 wrote it (from two real IFS headers, 214.51 - 70.05, 215.50 - 71.00). The real
#: pupil-tracking headers follow ``TEL ALT / 2 + 180`` instead (slope 1/2 over 63.9-71.0 deg of
#: altitude, shared/data/sphere_headers; :func:`hcdc.instruments.sphere.irdis.mueller.drot2_keyword`),
#: which the later versions write. Only read by the pre-2016-07-12 derotator correction.
DROT2_MINUS_ALT_DEG = 144.5


def pupil_drot2_deg(altitude_deg: float, legacy: bool = False) -> float:
    """``INS4 DROT2 BEGIN/END`` (deg) of a pupil-tracking file at ``altitude_deg``: ``alt/2 + 180``
    as the real headers (``legacy``: ``alt + 144.5``, the older simulators' value)."""
    if legacy:
        return float((altitude_deg + DROT2_MINUS_ALT_DEG) % 360.0)
    return float(mueller.drot2_keyword(0.0, altitude_deg, "PUPIL"))


@dataclass(frozen=True)
class Companion:
    """A point source bound to the star: separation (mas), PA (deg east of north), contrast.

    ``contrast`` is the flux ratio companion/star of the PSF cores (before coronagraph and ND);
    ``contrast_by_band`` overrides it per band label (``H2``, ``H3``, ``H``, ``K1``, ... see
    :func:`band_labels`).
    """

    separation_mas: float
    pa_deg: float
    contrast: float
    contrast_by_band: dict[str, float] = field(default_factory=dict)

    def contrast_in(self, band: str) -> float:
        """Contrast in band ``band`` (falls back to :attr:`contrast`)."""
        return float(self.contrast_by_band.get(band, self.contrast))


@dataclass(frozen=True)
class Target:
    """Observed star: name and ICRS/J2000 coordinates (deg), proper motion (arcsec/yr)."""

    name: str
    ra_deg: float
    dec_deg: float
    pm_ra_arcsec_yr: float = 0.0
    pm_dec_arcsec_yr: float = 0.0


#: 51 Eri (HIP 21547), J2000 coordinates from SIMBAD rounded to 0.001 s / 0.01"; a young star
#: with a directly imaged planet, a classic SPHERE target, transiting at Paranal at ~22 deg
#: from zenith.
FIFTY_ONE_ERI = Target(
    name="51 Eri",
    ra_deg=(4 + 37 / 60 + 36.132 / 3600) * 15.0,
    dec_deg=-(2 + 28 / 60 + 24.78 / 3600),
    pm_ra_arcsec_yr=0.04440,
    pm_dec_arcsec_yr=-0.06380,
)

#: Default companions (placed to fit the 'small' field of view: < 50 px = 610 mas).
DEFAULT_COMPANIONS: tuple[Companion, ...] = (
    Companion(250.0, 60.0, 4e-4, {"H2": 5e-4, "H3": 3e-4, "H": 4e-4}),
    Companion(480.0, 210.0, 1e-4, {"H2": 1.2e-4, "H3": 0.8e-4, "H": 1e-4}),
)


@dataclass(frozen=True)
class SequenceSpec:
    """One science template: filter combination, mode, DITs (s), ND for the flux frames, waffle."""

    filter: str  # INS COMB IFLT, e.g. DB_H23, BB_H
    mode: str  # DBI or CI
    object_dit: float
    n_object_files: int
    center_dit: float
    flux_dit: float
    flux_nd: str  # INS4 FILT2 NAME: ND_1.0, ND_2.0, ND_3.5
    waffle_orient: str  # OCS WAFFLE ORIENT: '+' or 'x'
    # CENTER frames: central leak / one waffle spot (flux ratio; on sky ~0.3 to ~30); None keeps
    # the night's coronagraph leak (1.5 times a spot, clean core). When set, the leak also gets
    # a ring of bright residual speckles at 1.5-3.5 lambda/D carrying as much flux again, as on
    # sky. Saturation: raw CENTER pixels are clipped at this many ADU (None: no saturation), as
    # a long DIT without ND saturates a bright leak.
    center_leak_to_spot: float | None = None
    center_saturation_adu: float | None = None
    # DPI (mode 'DPI', filter DP_0_*): the polarised scene and instrumental polarisation; the
    # OBJECT files cycle through the HWP positions Q+ Q- U+ U- (n_object_files a multiple of 4).
    polarimetry: DPIPolarimetry | None = None


@dataclass(frozen=True)
class DPIPolarimetry:
    """Polarised content of a DPI sequence (:mod:`hcdc.instruments.sphere.irdis.simulate_dpi`).

    ``ring``: the azimuthally polarised disc; ``ip_q``/``ip_u``: instrumental polarisation
    (fractions of I, fixed in the instrument frame, created before the HWP), applied to all the
    light (star and disc). The left field is the ordinary beam (P0), the right one the
    extraordinary beam (P90); the field throughputs make the beam mismatch.
    """

    ring: PolarisedRing
    ip_q: float = 0.01
    ip_u: float = -0.005
    # 'ideal': polarisation turns with the image, IP fixed in the detector frame (the 1.0 model);
    # 'mueller': the beams are the rows of the Mueller-matrix model of telescope, HWP, derotator
    # and polarisers (:mod:`hcdc.instruments.sphere.irdis.mueller`; ip_q/ip_u unused), the image
    # turned in IRDAP's (physical) sense; tracking PUPIL or FIELD (derotator position angle posang).
    instrument: str = "ideal"
    tracking: str = "PUPIL"
    posang_deg: float = 0.0


DEFAULT_SEQUENCES: tuple[SequenceSpec, ...] = (
    SequenceSpec("DB_H23", "DBI", 64.0, 10, 64.0, 4.0, "ND_2.0", "x"),
    SequenceSpec("BB_H", "CI", 32.0, 6, 32.0, 8.0, "ND_3.5", "+"),
)


@dataclass(frozen=True)
class SimulationScale:
    """Detector size and number of DITs: ``factor`` multiplies the 1024 x 2048 raw frame."""

    name: str
    factor: float
    object_ndit: int
    center_ndit: int
    flux_ndit: int
    sky_ndit: int
    calib_ndit: int

    @property
    def shape(self) -> tuple[int, int]:
        """Raw frame (rows, columns)."""
        return (round(sc.IRDIS_RAW_SHAPE[0] * self.factor), round(sc.IRDIS_RAW_SHAPE[1] * self.factor))

    @property
    def field_width(self) -> int:
        return round(sc.IRDIS_FIELD_WIDTH * self.factor)


SCALES: dict[str, SimulationScale] = {
    "small": SimulationScale(
        "small", 1 / 8, object_ndit=3, center_ndit=1, flux_ndit=2, sky_ndit=1, calib_ndit=2
    ),
    "medium": SimulationScale(
        "medium", 1 / 4, object_ndit=4, center_ndit=2, flux_ndit=3, sky_ndit=2, calib_ndit=3
    ),
    "full": SimulationScale("full", 1.0, object_ndit=8, center_ndit=4, flux_ndit=6, sky_ndit=4, calib_ndit=5),
}

#: Lamp signal (ADU per DIT, before the flat) of the five flats: increasing fluxes reveal
#: non-linear pixels (the ESO flat template takes 5 flats of increasing flux).
FLAT_LEVELS_ADU = (1000.0, 2500.0, 5000.0, 8000.0, 12000.0)
FLAT_DIT_S = 2.0
#: Relative optical throughput of the (left, right) fields (in DPI: ordinary, extraordinary beam)
#: and the detector response of the two halves (the master flat, normalised per field, keeps it).
FIELD_THROUGHPUT = (1.0, 0.95)
FIELD_RESPONSE = (1.0, 0.97)
#: Star core flux per nm of bandwidth (ADU/s/nm) of an H ~ 5 star; DB_H2 gets 52 nm of it.
STAR_FLUX_PER_NM = 2.0e4


def band_labels(filter_combination: str) -> tuple[str, str]:
    """Band labels (left, right) of an IRDIS filter combination: DB_H23 -> (H2, H3), BB_H -> (H, H)."""
    name = filter_combination.strip()
    if name.startswith(("DP_0_", "DP_45_")):  # DPI: the broad/narrow-band filter in both beams
        return band_labels(name.split("_", 2)[2])
    if name.startswith("DB_"):
        body = name[3:].replace("ND", "")
        return f"{body[0]}{body[1]}", f"{body[0]}{body[2]}"
    if name.startswith("BB_"):
        return name[3:], name[3:]
    if name.startswith("NB_"):
        return name[3:], name[3:]
    raise ValueError(
        f"filter combination {filter_combination!r} is not an IRDIS imaging filter (DB_*, BB_*, NB_*)"
    )


@dataclass
class SimulatedFile(SimulatedRawFile):
    """One written raw file and its truth.

    ``star_xy`` has shape ``(ndit, 2, 2)``: per DIT, per field (left, right), the exact star
    position ``(x, y)`` in that field's own pixel coordinates (0-based, field width
    ``SimulatedNight.field_width``; add the field offset for raw-frame columns). ``parang`` and
    ``derot`` are at mid-DIT (deg); ``mjd_mid`` is mid-DIT (UTC).
    """

    filter: str
    star_xy: np.ndarray
    lamp_adu_s: float | None = None
    waffle_orient: str | None = None
    waffle_spot_offsets_px: list[list[float]] | None = None
    sequence: str | None = None
    hwp: str | None = None  # DPI: OCS DPI H2RT STOKES of the file

    @property
    def role(self) -> str:
        """The DPR TYPE (OBJECT, OBJECT,CENTER, OBJECT,FLUX, SKY, DARK, DARK,BACKGROUND, FLAT,LAMP)."""
        return self.dpr_type

    def setup_dict(self) -> dict[str, Any]:
        return {"filter": self.filter}

    def truth_dict(self) -> dict[str, Any]:
        return {
            "star_xy": json_array(self.star_xy),
            "lamp_adu_s": self.lamp_adu_s,
            "waffle_orient": self.waffle_orient,
            "waffle_spot_offsets_px": self.waffle_spot_offsets_px,
            "sequence": self.sequence,
        } | ({} if self.hwp is None else {"hwp": self.hwp})


@dataclass
class SimulatedNight:
    """Everything :func:`simulate_irdis_night` wrote and the truth it injected.

    Star fluxes are core fluxes in ADU/s per field (left, right) before flat, ND and
    coronagraph; ``background_adu_s`` per filter is (instrument, sky) in ADU/s/px before the flat.
    ``center_guess_xy`` are the scaled default centre guesses per field; ``dead_rows`` /
    ``dead_columns`` the scaled vignetted zones of the raw frame ([start, stop)).
    """

    out_dir: Path
    seed: int
    scale: SimulationScale
    target: Target
    files: list[SimulatedFile]
    companions: tuple[Companion, ...]
    detector: sim.DetectorModel
    speckle_seed: int
    wavelengths_nm: dict[str, tuple[float, float]]
    star_flux_adu_s: dict[str, tuple[float, float]]
    background_adu_s: dict[str, tuple[float, float]]
    center_guess_xy: tuple[tuple[float, float], tuple[float, float]]
    dead_rows: tuple[tuple[int, int], ...]
    dead_columns: tuple[tuple[int, int], ...]
    field_width: int
    pixel_scale_mas: float
    pupil_offset_deg: float
    true_north_deg: float
    anamorphism_xy: tuple[float, float]
    coronagraph_leak: float
    mask_radius_px: float
    truth_json: Path | None = None
    truth_fits: Path | None = None
    ao_telemetry: simulate_ao.SimulatedTelemetry | None = None  # SPARTA files and true conditions
    polarimetry: dict[str, Any] | None = None  # DPI truth (simulate_dpi), JSON-ready
    low_order_speckles: bool = False  # the speckle model: NACO_LIKE_WITH_LOW_ORDER, else the default

    def select(
        self, dpr_type: str | None = None, filter: str | None = None, dit: float | None = None
    ) -> list[SimulatedFile]:
        """Files of a DPR TYPE / filter combination / DIT (None = any), in time order."""
        return select_files(self.files, dpr_type, dit, filter=filter)

    def companion_truth(self) -> list[dict[str, Any]]:
        """Injected companions with separations in mas and px and contrasts per band."""
        rows = []
        for c in self.companions:
            bands = sorted({b for flt in self.wavelengths_nm for b in band_labels(flt)})
            rows.append(
                {
                    "separation_mas": c.separation_mas,
                    "separation_px": c.separation_mas / self.pixel_scale_mas,
                    "pa_deg": c.pa_deg,
                    "contrast": {b: c.contrast_in(b) for b in bands},
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready truth (arrays of the detector model are in the truth FITS file)."""
        return {
            "seed": self.seed,
            "scale": self.scale.name,
            "scale_factor": self.scale.factor,
            "detector_shape": list(self.scale.shape),
            "field_width": self.field_width,
            "target": self.target.__dict__,
            "companions": self.companion_truth(),
            "speckle_seed": self.speckle_seed,
            "wavelengths_nm": {k: list(v) for k, v in self.wavelengths_nm.items()},
            "star_flux_adu_s": {k: list(v) for k, v in self.star_flux_adu_s.items()},
            "background_adu_s": {k: list(v) for k, v in self.background_adu_s.items()},
            "center_guess_xy": [[float(v) for v in c] for c in self.center_guess_xy],
            "dead_rows": [list(r) for r in self.dead_rows],
            "dead_columns": [list(c) for c in self.dead_columns],
            "pixel_scale_mas": self.pixel_scale_mas,
            "pupil_offset_deg": self.pupil_offset_deg,
            "true_north_deg": self.true_north_deg,
            "anamorphism_xy": list(self.anamorphism_xy),
            "coronagraph_leak": self.coronagraph_leak,
            "mask_radius_px": self.mask_radius_px,
            "gain_e_per_adu": self.detector.gain,
            "read_noise_e": self.detector.read_noise_e,
            "bad_pixel_counts": {
                "hot": int(np.count_nonzero(self.detector.bad_pixels & sim.DetectorModel.HOT)),
                "dead": int(np.count_nonzero(self.detector.bad_pixels & sim.DetectorModel.DEAD)),
                "nonlinear": int(np.count_nonzero(self.detector.bad_pixels & sim.DetectorModel.NONLINEAR)),
            },
            "files": [f.to_dict() for f in self.files],
            "ao_telemetry": None if self.ao_telemetry is None else self.ao_telemetry.to_dict(),
        } | ({} if self.polarimetry is None else {"polarimetry": self.polarimetry})


# ----------------------------------------------------------------------------------------------
# Sky geometry


# ----------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Exposure(PlannedExposure):
    """One file to write (planned): what, when, how (``spec``: the sequence it belongs to)."""

    spec: SequenceSpec
    lamp_adu_s: float | None = None
    bad_center: bool = False
    hwp: str | None = None  # DPI science files: Qplus, Qminus, Uplus or Uminus


def _science_roles(spec: SequenceSpec, scale: SimulationScale) -> list[tuple[str, str, float, int, str]]:
    """(DPR CATG, DPR TYPE, DIT, NDIT, ND) of one science template, in observing order."""
    roles = [
        ("SCIENCE", "OBJECT,FLUX", spec.flux_dit, scale.flux_ndit, spec.flux_nd),
        ("SCIENCE", "OBJECT,CENTER", spec.center_dit, scale.center_ndit, "OPEN"),
    ]
    roles += [("SCIENCE", "OBJECT", spec.object_dit, scale.object_ndit, "OPEN")] * spec.n_object_files
    roles += [
        ("SCIENCE", "OBJECT,CENTER", spec.center_dit, scale.center_ndit, "OPEN"),
        ("SCIENCE", "OBJECT,FLUX", spec.flux_dit, scale.flux_ndit, spec.flux_nd),
        ("SCIENCE", "SKY", spec.object_dit, scale.sky_ndit, "OPEN"),
    ]
    return roles


def _duration_s(roles: list[tuple[str, str, float, int, str]]) -> float:
    total = 0.0
    previous = None
    for _, dpr_type, dit, ndit, nd in roles:
        total += ndit * (dit + DIT_OVERHEAD_S) + (FILE_GAP_S if (dpr_type, nd) == previous else SETUP_GAP_S)
        previous = (dpr_type, nd)
    return total


def _plan_night(
    sequences: tuple[SequenceSpec, ...], scale: SimulationScale, target: Target, night: str, bad_center: bool
) -> list[_Exposure]:
    """Science templates centred on the target's transit, then the morning calibrations."""
    plan: list[_Exposure] = []
    counters = {"OBS": 0, "CAL_DARK": 0, "CAL_FLAT": 0}

    def origfile(kind: str, when: Time) -> str:
        counters[kind] += 1
        doy = when.to_datetime().timetuple().tm_yday
        return f"SPHERE_IRDIS_{kind}{doy:03d}_{counters[kind]:04d}.fits"

    all_roles = [_science_roles(spec, scale) for spec in sequences]
    # Start so that the first template is centred on the transit.
    start = _transit_time(target, night) - TimeDelta(_duration_s(all_roles[0]) / 2.0, format="sec")
    for k, (spec, roles) in enumerate(zip(sequences, all_roles, strict=True)):
        tpl_start = Time(start.isot[:19], scale="utc")
        t = start + TimeDelta(30.0, format="sec")
        previous = None
        n_centers = n_objects = 0
        for expno, (catg, dpr_type, dit, ndit, nd) in enumerate(roles, start=1):
            t = t + TimeDelta(
                0.0 if previous is None else (FILE_GAP_S if (dpr_type, nd) == previous else SETUP_GAP_S),
                format="sec",
            )
            date_obs, fram_utc, t = _file_times(t, dit, ndit)
            previous = (dpr_type, nd)
            n_centers += dpr_type == "OBJECT,CENTER"
            hwp = None
            if spec.polarimetry is not None:
                # OBJECT files cycle Q+ Q- U+ U-; the other science files are taken at Q+.
                hwp = HWP_STOKES[n_objects % 4] if dpr_type == "OBJECT" else HWP_STOKES[0]
                n_objects += dpr_type == "OBJECT"
            plan.append(
                _Exposure(
                    dpr_catg=catg,
                    dpr_type=dpr_type,
                    spec=spec,
                    dit=dit,
                    ndit=ndit,
                    nd=nd,
                    date_obs=date_obs,
                    fram_utc=fram_utc,
                    tpl_id=f"SPHERE_irdis_{spec.mode.lower()}_obs",
                    tpl_name=f"IRDIS {spec.mode} observations",
                    tpl_start=tpl_start.isot[:19],
                    tpl_expno=expno,
                    tpl_nexp=len(roles),
                    obs_id=2215300 + k,
                    obs_name=f"{target.name.replace(' ', '')}_IRDIS_{spec.mode}_{spec.filter}",
                    prog_id="0102.C-9999(A)",
                    origfile=origfile("OBS", Time(date_obs)),
                    bad_center=bad_center and k == 0 and dpr_type == "OBJECT,CENTER" and n_centers == 2,
                    hwp=hwp,
                )
            )
        start = t + TimeDelta(SETUP_GAP_S * 5, format="sec")
    # Morning calibrations (ESO calibration plan: darks at the science DITs plus 2 s; lamp flats).
    t = Time(f"{Time(plan[0].date_obs).datetime.date().isoformat()}T10:30:00", scale="utc")
    if t < Time(plan[-1].fram_utc):
        t = Time(plan[-1].fram_utc) + TimeDelta(3600.0, format="sec")
    for spec in sequences:

        def calibration(**fields: Any) -> _Exposure:
            """A calibration exposure of the current template (the daytime calibration OB)."""
            return _Exposure(
                dpr_catg="CALIB",
                spec=spec,  # noqa: B023 - called in this iteration only
                ndit=scale.calib_ndit,
                nd="OPEN",
                tpl_start=tpl_start,  # noqa: B023 - the template being written
                obs_id=200150000,
                obs_name="Calibration",
                prog_id="60.A-9255(A)",
                **fields,
            )

        dits = sorted({FLAT_DIT_S, spec.object_dit, spec.center_dit, spec.flux_dit})
        for dpr_type, dit_list in (
            ("DARK", dits),
            ("DARK,BACKGROUND", sorted({spec.object_dit, spec.center_dit, spec.flux_dit})),
        ):
            tpl_start = t.isot[:19]
            for expno, dit in enumerate(dit_list, start=1):
                date_obs, fram_utc, t = _file_times(
                    t + TimeDelta(FILE_GAP_S, format="sec"), dit, scale.calib_ndit
                )
                plan.append(
                    calibration(
                        dpr_type=dpr_type,
                        dit=dit,
                        date_obs=date_obs,
                        fram_utc=fram_utc,
                        tpl_id="SPHERE_irdis_cal_dark",
                        tpl_name="IRDIS darks and backgrounds",
                        tpl_expno=expno,
                        tpl_nexp=len(dit_list),
                        origfile=origfile("CAL_DARK", Time(date_obs)),
                    )
                )
            t = t + TimeDelta(SETUP_GAP_S, format="sec")
        tpl_start = t.isot[:19]
        for expno, level in enumerate(FLAT_LEVELS_ADU, start=1):
            date_obs, fram_utc, t = _file_times(
                t + TimeDelta(FILE_GAP_S, format="sec"), FLAT_DIT_S, scale.calib_ndit
            )
            plan.append(
                calibration(
                    dpr_type="FLAT,LAMP",
                    dit=FLAT_DIT_S,
                    date_obs=date_obs,
                    fram_utc=fram_utc,
                    tpl_id="SPHERE_irdis_cal_dflat",
                    tpl_name="IRDIS detector flat field",
                    tpl_expno=expno,
                    tpl_nexp=len(FLAT_LEVELS_ADU),
                    origfile=origfile("CAL_FLAT", Time(date_obs)),
                    lamp_adu_s=level / FLAT_DIT_S,
                )
            )
        t = t + TimeDelta(SETUP_GAP_S, format="sec")
    return plan


# ----------------------------------------------------------------------------------------------
# Headers


_CALIB_OPTICS = {
    # DPR TYPE -> (INS1 OPTI1 NAME Lyot stop, INS COMB ICOR, INS4 OPTI11 NAME, INS4 SHUT ST)
    "DARK": ("CLOSED", "N_NS_OPAQUE", "OPEN", False),
    "DARK,BACKGROUND": ("OPEN", "N_NS_CLEAR", "OPEN", False),
    "FLAT,LAMP": ("OPEN", "N_NS_CLEAR", "OPEN", True),
}


def _dpr_tech(exp: _Exposure) -> str:
    if exp.dpr_catg == "CALIB":
        return "IMAGE"
    if exp.spec.mode == "DPI":
        return "POLARIMETRY,CORONOGRAPHY"
    return "IMAGE,DUAL,CORONOGRAPHY" if exp.spec.mode == "DBI" else "IMAGE,CORONOGRAPHY"


def _filter_keywords(spec: SequenceSpec) -> dict[str, Any]:
    """INS COMB IFLT, INS1 FILT NAME/ID, INS1 OPTI2 NAME/ID for a filter combination."""
    iflt = spec.filter
    band = band_labels(iflt)[0][0]  # H for DB_H23/BB_H
    if iflt.startswith(("DP_0_", "DP_45_")):
        # DPI: the BB/NB filter in the CFW, the polariser pair in the DFW (IRDAP checks P0-90).
        name = iflt.split("_", 2)[2]
        cfw = ("B_" if name.startswith("BB_") else "N_") + name[3:]
        cfw_id = ("FILT_BBF_" if name.startswith("BB_") else "FILT_NBF_") + name[3:]
        return {
            "INS COMB IFLT": (iflt, "Infra-Red filter combination name."),
            "INS1 FILT ID": (cfw_id, "IRDIS filter unique id."),
            "INS1 FILT NAME": (cfw, "IRDIS filter name."),
            "INS1 OPTI2 NAME": ("P0-90" if iflt.startswith("DP_0_") else "P45-135", "IRDIS Dual Filter."),
        }
    if iflt.startswith("DB_"):
        cfw = "B_ND-H" if "NDH" in iflt else f"B_{'Ks' if band == 'K' else band}"
        dfw = "D_" + iflt[3:].replace("NDH", "H")
        dfw_id = "FILT_DBF_" + iflt[3:].replace("NDH", "H")
    elif iflt.startswith("BB_"):
        cfw, dfw, dfw_id = f"B_{iflt[3:]}", "CLEAR", "FILT_CLEAR"
    else:
        cfw, dfw, dfw_id = f"N_{iflt[3:]}", "CLEAR", "FILT_CLEAR"
    cfw_id = ("FILT_BBF_" + cfw[2:]) if cfw.startswith("B_") else ("FILT_NBF_" + cfw[2:])
    return {
        "INS COMB IFLT": (iflt, "Infra-Red filter combination name."),
        "INS1 FILT ID": (cfw_id, "IRDIS filter unique id."),
        "INS1 FILT NAME": (cfw, "IRDIS filter name."),
        "INS1 OPTI2 ID": (dfw_id, "OPTIi unique ID."),
        "INS1 OPTI2 NAME": (dfw, "IRDIS Dual Filter."),
    }


def _build_header(
    exp: _Exposure,
    target: Target,
    scale: SimulationScale,
    sky: FileConditions,
    seed: int,
    legacy_drot2: bool = False,
) -> fits.Header:
    """Primary header of one raw IRDIS file, keyword names and formats as in real SPHERE files
    (``legacy_drot2``: ``INS4 DROT2 = alt + 144.5`` as ``simulate-irdis`` 1.0, :func:`pupil_drot2_deg`)."""
    science = exp.dpr_catg == "SCIENCE"
    h = hdr.primary_header(exp, target, observer=True)
    cards: dict[str, Any] = {}
    # AO and derotator
    if science:
        for key, value in (
            ("AOS HOLOOP STATE", "CLOSED_LOOP"),
            ("AOS IRLOOP STATE", "CLOSED_LOOP"),
            ("AOS PUPLOOP STATE", "CLOSED_LOOP"),
            ("AOS TTLOOP STATE", "CLOSED_LOOP"),
            ("AOS IRWFS MODE", "DTTS3"),
            ("AOS VISWFS MODE", "GAIN_1000_FREQ_1380Hz"),
        ):
            cards[key] = (value, "SPARTA loop / WFS state")
    # Detector
    cards.update(
        hdr.detector_cards(
            exp, detector="IRDIS", gain_e_per_adu=sc.IRDIS_GAIN_E_PER_ADU, shape=scale.shape, window=True
        )
    )
    cards.update(
        {
            "DPR CATG": (exp.dpr_catg, "Observation category"),
            "DPR TECH": (_dpr_tech(exp), "Observation technique"),
            "DPR TYPE": (exp.dpr_type, "Observation type"),
        }
    )
    # Instrument configuration
    lyot, icor, opti11, shutter = _CALIB_OPTICS.get(exp.dpr_type, ("ST_ALC2", "N_ALC_YJH_S", "ALC2", True))
    cards["INS COMB ICOR"] = (icor, "Infra-Red coronograph combination")
    cards.update(_filter_keywords(exp.spec))
    dpi = exp.spec.polarimetry is not None
    cards["INS COMB POLA"] = (exp.spec.filter if dpi else "", "Polarisation combination name.")
    cards["INS COMB VCOR"] = ("V_NC_WF", "Visible coronograph combination name.")
    if dpi and science:  # no dithering (IRDAP reads these on OBJECT and FLUX files)
        cards["INS1 DITH POSX"] = (0, "[pix] Dithering X position")
        cards["INS1 DITH POSY"] = (0, "[pix] Dithering Y position")
    cards["INS1 MODE"] = (exp.spec.mode, "Instrument mode used.")
    cards["INS1 OPTI1 NAME"] = (lyot, "IRDIS Lyot stop.")
    cards["INS1 PAC X"] = (0.0, "[um] X-Axis absolute position on the detector")
    cards["INS1 PAC Y"] = (0.0, "[um] Y-Axis absolute position on the detector")
    pol = exp.spec.polarimetry
    tracking = pol.tracking if pol is not None else "PUPIL"
    cards["INS4 COMB ROT"] = (tracking if science else "CAL_ZENITH", "Assembly for derotator and ADC modes")
    if science and pol is not None and pol.instrument == "mueller":
        # the derotator as the polarimetric model needs it (mueller.drot2_keyword): pupil tracking
        # a/2 + 180 (real headers), field tracking (POSANG + a - p)/2
        (alt0, alt1), (p0, p1) = (sky.alt_az_airm[0], sky.ambient["alt_end"]), sky.parang_start_end
        for key, a, p in (("BEGIN", alt0, p0), ("END", alt1, p1)):
            value = float(mueller.drot2_keyword(p, a, tracking, pol.posang_deg))
            cards[f"INS4 DROT2 {key}"] = (round(value, 4), f"[deg] Position angle at {key.lower()}.")
        cards["INS4 DROT2 MODE"] = ("ELEV" if tracking == "PUPIL" else "SKY", "Derotator mode.")
    elif science:
        drot_begin = pupil_drot2_deg(sky.alt_az_airm[0], legacy_drot2)
        drot_end = pupil_drot2_deg(sky.ambient["alt_end"], legacy_drot2)
        cards["INS4 DROT2 BEGIN"] = (round(drot_begin, 4), "[deg] Position angle at start.")
        cards["INS4 DROT2 END"] = (round(drot_end, 4), "[deg] Position angle at end.")
        cards["INS4 DROT2 MODE"] = ("ELEV", "Derotator mode.")
    else:
        cards["INS4 DROT2 BEGIN"] = (0.0, "[deg] Position angle at start.")
        cards["INS4 DROT2 END"] = (0.0, "[deg] Position angle at end.")
        cards["INS4 DROT2 MODE"] = ("STAT", "Derotator mode.")
    cards.update(hdr.derotator_pointing_cards(sky.radec_of_date))
    if science and pol is not None and tracking == "FIELD":
        cards["INS4 DROT2 POSANG"] = (pol.posang_deg, "[deg] Position angle.")
    cards["INS4 FILT2 ID"] = (exp.nd, "Filter unique id.")
    cards["INS4 FILT2 NAME"] = (exp.nd, "NIR Neutral Density filters.")
    if dpi and science:
        # NIR half-wave plate (IRDAP: INS4 OPTI8 NAME = H_NIR; encoder INS4 DROT3 = angle + 152.15)
        angle = HWP_ANGLES_DEG[HWP_STOKES.index(exp.hwp)]
        encoder = round(angle + HWP_ENCODER_OFFSET_DEG, 4)
        cards["INS4 DROT3 BEGIN"] = (encoder, "[deg] Position angle at start.")
        cards["INS4 DROT3 END"] = (encoder, "[deg] Position angle at end.")
        cards["INS4 DROT3 POSANG"] = (angle, "[deg] Position angle.")
    cards["INS4 MODE"] = (f"IRDIS_{exp.spec.mode}", "Instrument mode used.")
    cards["INS4 OPTI10 NAME"] = ("APO1" if science else "OPEN", "Apodizers wheel.")
    cards["INS4 OPTI11 NAME"] = (opti11, "NIR coronagraphs wheel.")
    if dpi and science:
        cards["INS4 OPTI8 NAME"] = ("H_NIR", "NIR half-wave plate.")
    cards["INS4 SHUT ST"] = (shutter, "Shutter open [T] or closed [F].")
    # Observation block
    cards.update(hdr.observation_block_cards(exp))
    if science:  # the real calibration headers have no OB target
        cards.update(hdr.science_target_cards(target, exp.spec.waffle_orient))
    if dpi and science:
        cards["OCS DPI H2RT STOKES"] = (exp.hwp, "HWP Stokes position")
    cards["SEQ ARM"] = ("IRDIS", "Name of the sub-system.")
    # Telescope, site, target and ambient conditions (calibration files taken at zenith carry
    # none of these, as in the real WAVE,LAMP headers).
    if science:
        cards.update(hdr.paranal_site_cards())
        irdis_tel_cards = {
            "TEL IA FWHM": (round(sky.ambient["ia_fwhm"], 2), "[arcsec] Delivered seeing (airmass corr.)"),
            "TEL TARG COORDTYPE": ("M", "Coordinate type (M=mean)"),
        }
        cards.update(hdr.telescope_cards(target, sky, irdis_tel_cards))
    cards.update(hdr.template_cards(exp))
    # The HCDCSIM comment names the simulator's module before it moved to
    # hcdc.instruments.sphere.irdis: frozen, so that the same seed keeps giving byte-identical
    # raw files across releases (the catalogue recognises re-simulated files by their sha256).
    return hdr.close_header(h, cards, date_obs=exp.date_obs, simulator="hcdc.pipeline.simulate", seed=seed)


# ----------------------------------------------------------------------------------------------
# Pixels


@dataclass
class _NightModel:
    """Shared state of one simulated night (truth + rendering settings)."""

    scale: SimulationScale
    detector: sim.DetectorModel
    speckles: sim.SpeckleModel | EvolvingSpeckles
    illumination: np.ndarray
    center_base_xy: np.ndarray  # (2 fields, 2) star position at t_ref, field coordinates
    drift_px_per_hour: np.ndarray  # (2,) common drift of the star on the detector
    jitter_px: float
    t_ref: Time
    companions: tuple[Companion, ...]
    star_flux_per_nm: float
    field_throughput: tuple[float, float]
    coronagraph_leak: float
    mask_radius_px: float
    anamorphism_xy: tuple[float, float]
    #: True: companions placed in hcdc's old sense (the sky turned counter-clockwise by DEROT on the
    #: detector; ``simulate-irdis`` 1.0); False: the physical sense, clockwise by DEROT
    #: (:func:`hcdc.science.orientation.rotation_from_derotation`, docs/conventions.md)
    legacy_sky_sense: bool = False


def _optics(filter_comb: str) -> tuple[sim.BandOptics, sim.BandOptics]:
    entry = sc.IRDIS_FILTER_COMBINATIONS[filter_comb]
    return tuple(  # type: ignore[return-value]
        sim.BandOptics(w, b, sc.IRDIS_PIXEL_SCALE_MAS, sc.TELESCOPE_DIAMETER_M)
        for w, b in zip(entry["wave_nm"], entry["bandwidth_nm"], strict=True)
    )


def flux_frame_scenes(
    night: SimulatedNight, f: Any, k: int, field: int, speckles: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free pieces of DIT ``k`` of the FLUX file ``f`` in field ``field`` (0 or 1), star
    flux 1: the speckle light alone, the whole star scene (same time, star position and band as
    the simulator drew), and the frame's bad-pixel mask — what a photometry check needs to know
    the light it should measure (``speckles``: the night's evolving speckle field)."""
    optics = _optics(f.filter)[field]
    t_ref = Time(night.files[0].date_obs, scale="utc")  # the plan's first exposure: the model's t_ref
    t_s = (Time(f.mjd_mid[k], format="mjd", scale="utc") - t_ref).to_value(u.s)
    xy = tuple(f.star_xy[k, field])
    shape = (night.scale.shape[0], night.field_width)
    own = np.zeros(shape)
    sim.add_speckles(own, xy, 1.0, speckles, optics, t_s)
    scene = sim.render_star_field(
        shape,
        sim.StarScene(kind="flux", star_xy=xy, star_flux=1.0, optics=optics, speckles=speckles, time_s=t_s),
    )
    bad = night.detector.bad_pixels[:, field * night.field_width : (field + 1) * night.field_width] > 0
    return own, scene, bad


def _star_flux(model: _NightModel, filter_comb: str) -> tuple[float, float]:
    bw = sc.IRDIS_FILTER_COMBINATIONS[filter_comb]["bandwidth_nm"]
    return (
        model.star_flux_per_nm * bw[0] * model.field_throughput[0],
        model.star_flux_per_nm * bw[1] * model.field_throughput[1],
    )


def _background(filter_comb: str) -> tuple[float, float]:
    """(instrument, sky) background in ADU/s/px: thermal emission rising steeply towards K."""
    entry = sc.IRDIS_FILTER_COMBINATIONS[filter_comb]
    wl, bw = entry["wave_nm"][0], entry["bandwidth_nm"][0]
    instrument = 0.02 * bw * math.exp((wl - 1600.0) / 120.0)
    return instrument, 0.3 * instrument


def _star_positions(model: _NightModel, times: Time, rng: np.random.Generator) -> np.ndarray:
    """Exact star (x, y) per time and field (n, 2, 2): slow linear drift plus a small jitter."""
    hours = (times - model.t_ref).to_value(u.hour)
    pos = model.center_base_xy[None, :, :] + hours[:, None, None] * model.drift_px_per_hour[None, None, :]
    # The jitter is common to both fields (one star, one tip-tilt residual).
    jitter = rng.normal(0.0, model.jitter_px, (len(hours), 1, 2))
    return pos + jitter


def _render_exposure(
    exp: _Exposure,
    model: _NightModel,
    ra_dec_of_date: tuple[float, float],
    seed: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Raw cube (ndit, ny, nx) float32 and per-DIT truth for one planned exposure."""
    rng = _file_rng(seed, exp.date_obs)
    ny, nx = model.scale.shape
    fw = model.scale.field_width
    start, mid, end = dit_times(exp.date_obs, exp.fram_utc, exp.ndit, exp.dit, DIT_DELAY_S)
    ra, dec = ra_dec_of_date
    parang_mid = parallactic_angle(mid, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
    derot_mid = derotation_angles(parang_mid, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG)
    # Three sub-exposures per DIT smear companions along their arc as the sky turns.
    n_sub_t = 3
    sub_offsets = (np.arange(n_sub_t) + 0.5) / n_sub_t * exp.dit
    sub_times = Time(
        np.concatenate([(start + TimeDelta(o, format="sec")).jd for o in sub_offsets]),
        format="jd",
        scale="utc",
    )
    derot_sub = derotation_angles(
        parallactic_angle(sub_times, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG),
        sc.PUPIL_OFFSET_DEG,
        sc.TRUE_NORTH_DEG,
    ).reshape(n_sub_t, exp.ndit)
    star_xy = _star_positions(model, mid, rng)
    pol = exp.spec.polarimetry
    model_rows = image_derot = None
    if pol is not None and pol.instrument == "mueller" and exp.hwp is not None:
        # Mueller-matrix beams per DIT (mid-DIT angles) and the image rotation of the tracking mode
        alt_mid = alt_az_airmass(mid, ra, dec)[0]
        theta_der = mueller.derotator_angle(
            mueller.drot2_keyword(parang_mid, alt_mid, pol.tracking, pol.posang_deg), pol.tracking
        )
        hwp_angle = HWP_ANGLES_DEG[HWP_STOKES.index(exp.hwp)]
        params = mueller.model_parameters(_filter_id(exp.spec), exp.date_obs)
        model_rows = mueller.beam_rows(parang_mid, alt_mid, hwp_angle, theta_der, params)  # (ndit, 2, 4)
        image_derot = mueller.image_derotation_angle(parang_mid, alt_mid, theta_der)
    if exp.dpr_type == "OBJECT,FLUX":
        star_xy = star_xy + np.array([12.0, 0.0])  # star moved off the coronagraph mask
    optics = _optics(exp.spec.filter)
    bands = band_labels(exp.spec.filter)
    star_flux = _star_flux(model, exp.spec.filter)
    bg_instrument, bg_sky = _background(exp.spec.filter)
    spot_offsets = None
    if exp.bad_center:
        # A deliberately bad CENTER frame: spot 0 pushed 2.5 px tangentially (a DM glitch), which
        # moves the intersection of the lines joining opposite spots by ~1.2 px.
        orient = sc.waffle_orientation_deg(exp.spec.waffle_orient)
        a = math.radians(orient)
        spot_offsets = np.zeros((4, 2))
        spot_offsets[0] = 2.5 * np.array([-math.sin(a), math.cos(a)])
    leak_residual = None
    if exp.dpr_type == "OBJECT,CENTER" and exp.spec.center_leak_to_spot is not None:
        # Own generator: the other random draws (and the default night's bytes) are unchanged.
        leak_residual = sim.make_leak_residual(_file_rng(seed, f"{exp.date_obs}:leak"))
    cube = np.empty((exp.ndit, ny, nx), dtype=np.float32)
    for k in range(exp.ndit):
        light = np.zeros((ny, nx))
        if exp.dpr_type in {"DARK,BACKGROUND", "SKY", "OBJECT", "OBJECT,CENTER", "OBJECT,FLUX"}:
            light += bg_instrument
        if exp.dpr_type in {"SKY", "OBJECT", "OBJECT,CENTER", "OBJECT,FLUX"}:
            light += bg_sky
        if exp.dpr_type == "FLAT,LAMP":
            light += exp.lamp_adu_s
        if exp.dpr_type in {"OBJECT", "OBJECT,CENTER", "OBJECT,FLUX"}:
            t_s = (mid[k] - model.t_ref).to_value(u.s)
            for f in range(2):
                field = _field_scene(
                    exp,
                    model,
                    optics[f],
                    bands[f],
                    star_flux[f],
                    tuple(star_xy[k, f]),
                    t_s,
                    derot_sub[:, k],
                    spot_offsets,
                    (ny, fw),
                    leak_residual=leak_residual,
                )
                if model_rows is not None and image_derot is not None:
                    field = _mueller_field(
                        exp, model, field, f, tuple(star_xy[k, f]), float(image_derot[k]), model_rows[k, f]
                    )
                elif exp.spec.polarimetry is not None:
                    field = _polarised_field(exp, model, field, f, tuple(star_xy[k, f]), float(derot_mid[k]))
                light[:, f * fw : (f + 1) * fw] += field
        light *= model.illumination
        cube[k] = model.detector.readout(light, exp.dit, rng)
        if exp.dpr_type == "OBJECT,CENTER" and exp.spec.center_saturation_adu is not None:
            np.minimum(cube[k], np.float32(exp.spec.center_saturation_adu), out=cube[k])
    if exp.dpr_catg == "CALIB":
        # Calibrations are taken at zenith with the derotator stationary: no star, no angles.
        parang_mid = np.full(exp.ndit, np.nan)
        derot_mid = np.full(exp.ndit, np.nan)
        star_xy = np.full_like(star_xy, np.nan)
    truth = {
        "mjd_mid": mid.mjd,
        "parang": parang_mid,
        "derot": derot_mid,
        "star_xy": star_xy,
        "parang_start_end": (
            float(parallactic_angle(start[:1], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
            float(parallactic_angle(end[-1:], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
        ),
        "waffle_spot_offsets_px": None if spot_offsets is None else spot_offsets.tolist(),
    }
    return cube, truth


def _field_scene(
    exp: _Exposure,
    model: _NightModel,
    optics: sim.BandOptics,
    band: str,
    star_flux: float,
    star_xy: tuple[float, float],
    t_s: float,
    derot_sub: np.ndarray,
    spot_offsets: np.ndarray | None,
    shape: tuple[int, int],
    leak_residual: np.ndarray | None = None,
) -> np.ndarray:
    """Noise-free star scene of one field (ADU/s before the flat)."""
    kind = {"OBJECT": "coronagraphic", "OBJECT,CENTER": "center", "OBJECT,FLUX": "flux"}[exp.dpr_type]
    nd = sc.nd_transmission(exp.nd, optics.wavelength_nm)
    companions = []
    # hcdc rotation angles that put each sub-exposure north up (DEROT is vlt-sphere's)
    turns = derot_sub if model.legacy_sky_sense else rotation_from_derotation(derot_sub)
    for c in model.companions:
        sep_px = mas_to_px(c.separation_mas, optics.pixel_scale_mas)
        for turn in turns:
            x, y = sim.companion_detector_xy(star_xy, sep_px, c.pa_deg, float(turn), model.anamorphism_xy)
            companions.append((x, y, c.contrast_in(band) * star_flux / len(derot_sub)))
    scene = sim.StarScene(
        kind=kind,
        star_xy=star_xy,
        star_flux=star_flux,
        optics=optics,
        speckles=model.speckles,
        time_s=t_s,
        nd_transmission=nd,
        coronagraph_leak=model.coronagraph_leak,
        mask_radius_px=model.mask_radius_px,
        companions_xy_flux=companions,
        waffle_radius_px=sc.waffle_radius_px(optics.wavelength_nm, optics.pixel_scale_mas),
        waffle_orientation_deg=sc.waffle_orientation_deg(exp.spec.waffle_orient),
        waffle_spot_offsets_px=spot_offsets,
        center_leak_to_spot=exp.spec.center_leak_to_spot,
        leak_residual=leak_residual,
    )
    return sim.render_star_field(shape, scene)


def _polarised_field(
    exp: _Exposure,
    model: _NightModel,
    star_field: np.ndarray,
    beam: int,
    star_xy: tuple[float, float],
    derot_deg: float,
) -> np.ndarray:
    """DPI beam ``beam`` (0 = ordinary/left, 1 = extraordinary/right) of one field, ADU/s.

    The unpolarised star light (``star_field``, field throughput included) and the ring
    (:func:`~hcdc.science.simulation.dpi.ring_stokes_on_detector`, times the field throughput and
    the ND) are split as ``(I +- S)/2`` with ``S`` the Stokes parameter of the HWP position, the
    instrumental polarisation included (:func:`~hcdc.science.simulation.dpi.hwp_measured_stokes`).
    """
    pol = exp.spec.polarimetry
    assert pol is not None and exp.hwp is not None
    sign = 1.0 if beam == 0 else -1.0
    optics = _optics(exp.spec.filter)[beam]
    scale = model.field_throughput[beam] * sc.nd_transmission(exp.nd, optics.wavelength_nm)
    i, q, u = (
        scale * a
        for a in dpi_sim.ring_stokes_on_detector(
            pol.ring, star_field.shape, star_xy, derot_deg, model.anamorphism_xy
        )
    )
    star_s = dpi_sim.hwp_measured_stokes(star_field, 0.0, 0.0, exp.hwp, pol.ip_q, pol.ip_u)
    ring_s = dpi_sim.hwp_measured_stokes(i, q, u, exp.hwp, pol.ip_q, pol.ip_u)
    return 0.5 * (star_field + i + sign * (star_s + ring_s))


def _filter_id(spec: SequenceSpec) -> str:
    """``INS1 FILT ID`` of the sequence's filter combination (as :func:`_filter_keywords` writes it)."""
    return str(_filter_keywords(spec)["INS1 FILT ID"][0])


def _mueller_field(
    exp: _Exposure,
    model: _NightModel,
    star_field: np.ndarray,
    beam: int,
    star_xy: tuple[float, float],
    image_derot_deg: float,
    row: np.ndarray,
) -> np.ndarray:
    """DPI beam ``beam`` of one field through the Mueller-matrix model, ADU/s: ``row`` (the first
    row of the beam's system matrix, :func:`~hcdc.instruments.sphere.irdis.mueller.beam_rows`)
    times the Stokes vector incident on the telescope, pixel by pixel: the unpolarised star
    (``star_field``) plus the ring, whose sky Stokes (IAU) are placed on the detector turned by
    ``image_derot_deg`` in IRDAP's sense
    (:func:`~hcdc.science.simulation.dpi.ring_sky_stokes_on_detector`)."""
    pol = exp.spec.polarimetry
    assert pol is not None
    optics = _optics(exp.spec.filter)[beam]
    scale = model.field_throughput[beam] * sc.nd_transmission(exp.nd, optics.wavelength_nm)
    i, q, u = (
        scale * a
        for a in dpi_sim.ring_sky_stokes_on_detector(
            pol.ring, star_field.shape, star_xy, image_derot_deg, model.anamorphism_xy
        )
    )
    return row[0] * (star_field + i) + row[1] * q + row[2] * u


def _scaled_zones(zones: tuple[tuple[int, int], ...], factor: float) -> tuple[tuple[int, int], ...]:
    return tuple((int(math.floor(a * factor)), int(math.ceil(b * factor))) for a, b in zones)


def _check_companions(model: _NightModel) -> None:
    """Refuse companions that would leave the illuminated field (clear error, no silent clipping)."""
    fw = model.scale.field_width
    dead_cols = _scaled_zones(sc.IRDIS_DEAD_COLUMNS, model.scale.factor)
    dead_rows = _scaled_zones(sc.IRDIS_DEAD_ROWS, model.scale.factor)
    for c in model.companions:
        sep_px = c.separation_mas / sc.IRDIS_PIXEL_SCALE_MAS
        for f in range(2):
            cx, cy = model.center_base_xy[f]
            x_lo = max(b for a, b in dead_cols if a <= f * fw + 1) - f * fw
            x_hi = min(a for a, b in dead_cols if b >= (f + 1) * fw - 1) - f * fw
            room = min(cx - x_lo, x_hi - cx, cy - dead_rows[0][1], dead_rows[-1][0] - cy) - 6.0
            if sep_px > room:
                raise ValueError(
                    f"companion at {c.separation_mas} mas ({sep_px:.1f} px) does not fit in the "
                    f"'{model.scale.name}' field of view (at most {room * sc.IRDIS_PIXEL_SCALE_MAS:.0f} mas "
                    f"= {room:.1f} px from the star); use a larger scale or a smaller separation"
                )


# ----------------------------------------------------------------------------------------------
# Entry point


def simulate_irdis_night(
    out_dir: str | Path,
    *,
    seed: int = 0,
    scale: str | SimulationScale = "small",
    companions: tuple[Companion, ...] | list[Companion] | None = None,
    sequences: tuple[SequenceSpec, ...] | list[SequenceSpec] | None = None,
    target: Target = FIFTY_ONE_ERI,
    night: str = "2018-11-30",
    colon_in_names: bool = True,
    bad_center: bool = False,
    star_flux_per_nm: float = STAR_FLUX_PER_NM,
    anamorphism_xy: tuple[float, float] = sc.IRDIS_ANAMORPHISM_XY,
    progress: Any = None,
    speckle_level: float = 1.0,
    low_order_speckles: bool = False,
    ao_telemetry: bool | simulate_ao.AoTelemetrySpec = False,
    speckle_seed: int | None = None,
    legacy_sky_sense: bool = False,
) -> SimulatedNight:
    """Write a night of raw IRDIS files into ``out_dir`` and return what was written with its truth.

    ``scale``: 'small' (128 x 256 px, a few DITs: a whole night in seconds), 'medium'
    (256 x 512) or 'full' (1024 x 2048, real NDITs). ``companions`` default to
    :data:`DEFAULT_COMPANIONS`; ``sequences`` to :data:`DEFAULT_SEQUENCES` (DB_H23 DBI then
    BB_H CI). ``night`` is the local evening date (UTC date of the night's start); the first
    sequence is centred on the target's transit. ``colon_in_names=False`` writes
    ``SPHER.2018-12-01T04_12_33.123.fits`` (the '_' variant). ``bad_center=True`` spoils the
    second CENTER file of the first sequence (one waffle spot displaced) to exercise the centring
    fall-back. ``progress``: optional callable ``(done, total, name)``. ``speckle_level``
    multiplies the mean speckle intensity (1: tuned on the real NACO L' beta Pic cube,
    docs/simulation.md; SPHERE in H is deeper, so values below 1 are plausible too; 0: no
    speckles). ``low_order_speckles=True`` adds the slow low-order halo field of
    :data:`~hcdc.science.simulation.speckles.NACO_LIKE_WITH_LOW_ORDER` (its brighter envelope,
    times ``speckle_level``), which matches the NACO cube's cADI residuals better
    (docs/simulation.md; not the default yet). ``ao_telemetry`` (True or a
    ``simulate_ao.AoTelemetrySpec``) also writes SPARTA ``OBJECT,AO`` files with time-correlated
    conditions during each science template and makes the speckle brightness follow their Strehl
    (:mod:`hcdc.instruments.sphere.irdis.simulate_ao`). ``speckle_seed`` (default: drawn from
    ``seed``) fixes the instrument's speckle field alone: calls with the same ``speckle_seed`` and
    different ``seed`` and ``target`` simulate several stars observed with the same instrument
    (same static and quasi-static speckles, each sequence's own noise and evolution from its
    start), the known answer of reference-star differential imaging (docs/rdi.md). Also writes
    ``simulation_truth.json`` and ``simulation_truth.fits`` (detector truth: BIAS, DARK_CURRENT,
    FLAT, BADPIX, ILLUMINATION) next to the raw files. The sky turns on the detector as on a
    real, non-mirrored IRDIS: clockwise by ``DEROT`` (frame k turned counter-clockwise by
    ``DEROT[k]`` is north up, vlt-sphere/VIP/IRDAP); ``legacy_sky_sense=True`` places companions in
    hcdc's old, opposite sense (``simulate-irdis`` 1.0).
    """
    out = Path(out_dir)
    if isinstance(scale, str) and scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    scale_obj = SCALES[scale] if isinstance(scale, str) else scale
    companions = tuple(DEFAULT_COMPANIONS if companions is None else companions)
    sequences = tuple(DEFAULT_SEQUENCES if sequences is None else sequences)
    for spec in sequences:
        if spec.filter not in sc.IRDIS_FILTER_COMBINATIONS:
            raise ValueError(f"unknown IRDIS filter combination {spec.filter!r}")
        band_labels(spec.filter)
        sc.waffle_orientation_deg(spec.waffle_orient)
        sc.nd_transmission(spec.flux_nd, 1600.0)
    shape, fw, factor = scale_obj.shape, scale_obj.field_width, scale_obj.factor

    root = np.random.default_rng(seed)
    detector_seed, drawn_speckle_seed, center_seed = (int(x) for x in root.integers(0, 2**31, 3))
    speckle_seed = drawn_speckle_seed if speckle_seed is None else int(speckle_seed)
    detector = sim.make_detector(
        shape,
        np.random.default_rng(detector_seed),
        field_width=fw,
        gain=sc.IRDIS_GAIN_E_PER_ADU,
        read_noise_e=READ_NOISE_E,
        field_response=FIELD_RESPONSE,
    )
    # Evolving speckles (static + quasi-static drift + per-exposure part) whose statistics match
    # the real NACO beta Pic cube (docs/simulation.md); the discrete sim.make_speckles model was
    # far too stable (classical ADI reached S/N 170-575 on the demo's companions).
    if not speckle_level >= 0.0:
        raise ValueError(f"speckle_level must be >= 0; got {speckle_level}")
    model = dict(NACO_LIKE_WITH_LOW_ORDER) if low_order_speckles else {"envelope": NACO_LIKE_ENVELOPE}
    r_env, level_env = model.pop("envelope")
    speckles = make_evolving_speckles(
        np.random.default_rng(speckle_seed),
        envelope=(r_env, tuple(max(v * speckle_level, 1e-300) for v in level_env)),
        **model,
    )
    crng = np.random.default_rng(center_seed)
    guess = np.array(sc.IRDIS_CENTER_GUESS_XY) * factor
    offset = crng.uniform(-1.5, 1.5, 2)  # same pointing offset in both fields
    center_base = guess + offset[None, :] + crng.uniform(-0.5, 0.5, (2, 2))
    dead_rows = _scaled_zones(sc.IRDIS_DEAD_ROWS, factor)
    dead_cols = _scaled_zones(sc.IRDIS_DEAD_COLUMNS, factor)
    plan = _plan_night(sequences, scale_obj, target, night, bad_center)
    telemetry = None
    if ao_telemetry:
        ao_spec = ao_telemetry if isinstance(ao_telemetry, simulate_ao.AoTelemetrySpec) else None
        # own generator: the other draws (and so every existing simulation) stay the same
        telemetry = simulate_ao.simulate_telemetry(
            np.random.default_rng([seed, 15]), simulate_ao.windows_from_plan(plan), ao_spec
        )
        speckles = simulate_ao.condition_speckles(speckles, telemetry, Time(plan[0].date_obs, scale="utc"))
    model = _NightModel(
        scale=scale_obj,
        detector=detector,
        speckles=speckles,
        illumination=sim.illumination_mask(shape, dead_rows, dead_cols),
        center_base_xy=center_base,
        drift_px_per_hour=crng.uniform(-0.3, 0.3, 2),
        jitter_px=0.01,
        t_ref=Time(plan[0].date_obs, scale="utc"),
        companions=companions,
        star_flux_per_nm=star_flux_per_nm,
        field_throughput=FIELD_THROUGHPUT,
        coronagraph_leak=3e-3,
        mask_radius_px=ALC2_MASK_RADIUS_MAS / sc.IRDIS_PIXEL_SCALE_MAS,
        anamorphism_xy=tuple(anamorphism_xy),  # type: ignore[arg-type]
        legacy_sky_sense=legacy_sky_sense,
    )
    _check_companions(model)
    out.mkdir(parents=True, exist_ok=True)
    conditions = AmbientConditions(np.random.default_rng(int(root.integers(0, 2**31))))

    files: list[SimulatedFile] = []
    for i, exp in enumerate(plan):
        t0, t1 = Time(exp.date_obs, scale="utc"), Time(exp.fram_utc, scale="utc")
        ra_used, dec_used = hdr.pointing_as_written(target, t0)
        cube, truth = _render_exposure(exp, model, (ra_used, dec_used), seed)
        sky = file_conditions(t0, t1, (ra_used, dec_used), truth["parang_start_end"], conditions)
        if telemetry is not None and exp.dpr_catg == "SCIENCE":
            airmass = np.array(sky.alt_az_airm[2:])
            sky.ambient.update(simulate_ao.ambient_conditions(telemetry, (t0, t1), airmass))
        header = _build_header(exp, target, scale_obj, sky, seed, legacy_drot2=legacy_sky_sense)
        path = out / archive_name(exp.date_obs, colon=colon_in_names)
        fits.PrimaryHDU(data=cube, header=header).writeto(path, overwrite=True)
        files.append(
            SimulatedFile(
                **raw_file_fields(path, exp, truth),
                dpr_tech=_dpr_tech(exp),
                filter=exp.spec.filter,
                mode=exp.spec.mode,
                star_xy=np.asarray(truth["star_xy"]),
                lamp_adu_s=exp.lamp_adu_s,
                waffle_orient=exp.spec.waffle_orient if exp.dpr_catg == "SCIENCE" else None,
                waffle_spot_offsets_px=truth["waffle_spot_offsets_px"],
                sequence=exp.spec.filter,
                hwp=exp.hwp,
            )
        )
        if progress is not None:
            progress(i + 1, len(plan), path.name)

    if telemetry is not None:
        simulate_ao.write_telemetry_files(
            out, telemetry, target, lambda date_obs: archive_name(date_obs, colon=colon_in_names)
        )
    night_truth = SimulatedNight(
        out_dir=out,
        seed=seed,
        scale=scale_obj,
        target=target,
        files=files,
        companions=companions,
        detector=detector,
        speckle_seed=speckle_seed,
        wavelengths_nm={s.filter: sc.IRDIS_FILTER_COMBINATIONS[s.filter]["wave_nm"] for s in sequences},
        star_flux_adu_s={s.filter: _star_flux(model, s.filter) for s in sequences},
        background_adu_s={s.filter: _background(s.filter) for s in sequences},
        center_guess_xy=(tuple(guess[0]), tuple(guess[1])),  # type: ignore[arg-type]
        dead_rows=dead_rows,
        dead_columns=dead_cols,
        field_width=fw,
        pixel_scale_mas=sc.IRDIS_PIXEL_SCALE_MAS,
        pupil_offset_deg=sc.PUPIL_OFFSET_DEG,
        true_north_deg=sc.TRUE_NORTH_DEG,
        anamorphism_xy=model.anamorphism_xy,
        coronagraph_leak=model.coronagraph_leak,
        mask_radius_px=model.mask_radius_px,
        ao_telemetry=telemetry,
        low_order_speckles=bool(low_order_speckles),
    )
    _write_truth(night_truth, model)
    return night_truth


def _write_truth(night: SimulatedNight, model: _NightModel) -> None:
    """simulation_truth.json (everything but big arrays) and simulation_truth.fits (detector maps)."""
    truth_fits = write_truth_json(night)
    det = night.detector
    knee = np.where(np.isfinite(det.nonlinear_knee_e), det.nonlinear_knee_e, 0.0)
    hdus = detector_map_hdus(
        det, [("NONLIN_KNEE", knee, "electron"), ("ILLUMINATION", model.illumination, "")]
    )
    hdus[0].header["HCDCSEED"] = night.seed
    hdus[0].header["COMMENT"] = "BADPIX bits: 1 hot, 2 dead, 4 non-linear; NONLIN_KNEE 0 = linear pixel"
    fits.HDUList(hdus).writeto(truth_fits, overwrite=True)


def read_simulation_truth(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Truth of a night written earlier: the JSON content and the detector maps by extension name.

    Returns ``(truth, maps)`` where ``maps`` has BIAS, DARK_CURRENT, FLAT, BADPIX, NONLIN_KNEE and
    ILLUMINATION arrays. Raises ``FileNotFoundError`` naming the missing file.
    """
    folder = Path(out_dir)
    json_path, fits_path = folder / "simulation_truth.json", folder / "simulation_truth.fits"
    for path in (json_path, fits_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no simulation truth here (not written by simulate_irdis_night?)"
            )
    truth = json.loads(json_path.read_text())
    with fits.open(fits_path) as hdul:
        maps = {hdu.name: np.array(hdu.data) for hdu in hdul[1:]}
    return truth, maps
