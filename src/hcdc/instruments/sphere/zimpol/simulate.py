"""Write a night of raw SPHERE/ZIMPOL files with known truth (imaging or polarimetry).

:func:`simulate_zimpol_night` writes, for one mode:

* **polarimetry** (``DPR TECH = POLARIMETRY``, ``FastPolarimetry`` read-out, field stabilised =
  calChecker ``ZPL_SCI_P1``, ``INS4 DROT2 MODE = SKY``): ``n_cycles`` half-wave-plate cycles of
  four files (``OCS3 ZIMPOL POL STOKES`` = Qplus, Qminus, Uplus, Uminus), each dithered, of a star
  with a centrally symmetric ring disc of known polarised brightness
  (:class:`hcdc.science.simulation.dpi.DPIScene`: azimuthal polarisation, so the true ``Q_phi``
  is the ring and ``U_phi = 0``) and instrumental polarisation ``ip_q``/``ip_u`` (fractions of
  I) created before the half-wave plate;
* **imaging** (``StandardImaging``, pupil stabilised ``ELEV``): an OBJECT,FLUX file (star
  without coronagraph, ``DPR TECH = IMAGE``), dithered coronagraphic OBJECT cubes
  (``IMAGE,CORONOGRAPHY``, Lyot mask ``V_CLC_MT_WF``: the star core removed, its AO halo left)
  with companions turning with the parallactic angle (ADI), a second OBJECT,FLUX;
* the calibrations of the next morning for the read-out mode used: BIAS, DARK at each science
  DIT, FLAT,LAMP per filter.

Each file is a primary header (no data) and two image extensions, one ``NDIT x rows x columns``
uint16 cube per camera (CAM1 = Callas, CAM2 = Bartoli; ESO QC), with the pre/overscan columns and
the stripe-mask row layout of :mod:`hcdc.instruments.sphere.zimpol.raw`. Sizes: ``small`` 256 x
388 per camera (128 data columns per ADC), ``medium`` 512 x 644, ``full`` 1024 x 1156 (the real
detector). The sky is rendered on a grid of physical pixels (3.6 mas); the micro-lenses sum two
physical rows into each open row. The detector of each camera is
:func:`hcdc.science.simulation.irdis.make_detector` (bias per ADC half, dark current, pixel
response, hot and dead pixels, Poisson and read noise) with the ZIMPOL gain/read noise of
:mod:`.constants` (assumptions).

Truth: ``simulation_truth.json`` (scene parameters, per-file Stokes label, dither, star position,
angles) and ``simulation_truth.fits`` (detector maps of both cameras, and for polarimetry the
true polarised brightness ``P`` on the reduced grid, star at its centre, ADU/s per reduced pixel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time, TimeDelta

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere import observing as obs
from hcdc.instruments.sphere import simulated_headers as hdr
from hcdc.instruments.sphere import simulated_truth
from hcdc.instruments.sphere.irdis.simulate import FIFTY_ONE_ERI, FILE_GAP_S, SETUP_GAP_S, Target
from hcdc.instruments.sphere.observing import DIT_DELAY_S, file_rng, file_times, transit_time
from hcdc.instruments.sphere.simulated_headers import archive_name
from hcdc.instruments.sphere.zimpol import constants as zc
from hcdc.instruments.sphere.zimpol import raw
from hcdc.science.calibration.timing import derotation_angles, dit_times, parallactic_angle
from hcdc.science.geometry import frame_center, rotate_frame
from hcdc.science.orientation import rotation_from_derotation
from hcdc.science.polarimetry.maps import position_angle_from_star
from hcdc.science.polarimetry.rotation import rotate_stokes
from hcdc.science.simulation import irdis as sim
from hcdc.science.simulation.dpi import DPIScene, simulate_dpi_beams
from hcdc.science.simulation.speckles import make_evolving_speckles

__all__ = [
    "DEFAULT_COMPANIONS",
    "MODES",
    "SCALES",
    "SimulatedZimpolFile",
    "SimulatedZimpolNight",
    "ZimpolCompanion",
    "ZimpolScale",
    "simulate_zimpol_night",
]

MODES = ("imaging", "polarimetry")
#: Read-out mode and DPR TECH per simulated mode.
READOUT = {"imaging": "StandardImaging", "polarimetry": "FastPolarimetry"}
TECHNIQUE = {"imaging": "IMAGE", "polarimetry": "POLARIMETRY"}
#: Filters (CAM1, CAM2): imaging in two narrow bands, polarimetry in the very broad band.
FILTERS = {"imaging": ("N_R", "N_I"), "polarimetry": ("VBB", "VBB")}
#: Science DITs (s) and the DIT of the imaging flux frames; DIT of the flats (ASSUMPTION).
SCIENCE_DIT_S = {"imaging": 2.0, "polarimetry": 4.0}
FLUX_DIT_S = 1.0
FLAT_DIT_S = 1.0
#: CCD bias level (ADU) per ADC half, dark current (ADU/s). ASSUMPTION (no value in the reference).
BIAS_ADU = (1000.0, 1040.0)
DARK_CURRENT_ADU_S = 0.01
#: Time between the starts of two imaging OBJECT files (s): the sequence spans the transit, so
#: that the field turns by tens of degrees (ADI) with few files.
IMAGING_FILE_SPACING_S = 600.0
#: Flat lamp level (ADU/s per physical pixel).
LAMP_ADU_S = 4000.0
#: Dither pattern (x, y) in physical pixels, one per file in turn (multiples of 4: integer shifts
#: on the de-interleaved (y / 2) and column-binned (x / 2) grid).
DITHER_PATTERN_PX: tuple[tuple[int, int], ...] = ((0, 0), (4, 4), (-4, 4), (4, -4), (-4, -4))
#: Fractional rms of the flux of each frame (seeing), common to both modulation states.
FRAME_FLUX_RMS = 0.02
#: Imaging star: total flux (ADU/s) and the fraction of it in the AO halo.
STAR_FLUX_ADU_S = 1.2e5
HALO_FRACTION = 0.05
#: Band width (nm) over which the speckles are sampled (they scale with lambda).
SPECKLE_BANDWIDTH_NM = 40.0
#: Imaging coronagraph (INS COMB VCOR; form vocabulary) and its mask radius (mas; ASSUMPTION).
CORONAGRAPH = "V_CLC_MT_WF"
CORONAGRAPH_RADIUS_MAS = 77.5


@dataclass(frozen=True)
class ZimpolCompanion:
    """A point source: separation (mas), position angle (deg east of north), contrast (flux ratio to
    the star's diffraction core, i.e. to the star as an OBJECT,FLUX frame shows it)."""

    separation_mas: float
    pa_deg: float
    contrast: float


#: Default imaging companion, inside the small field (+-460 mas).
DEFAULT_COMPANIONS: tuple[ZimpolCompanion, ...] = (ZimpolCompanion(250.0, 70.0, 2e-3),)


@dataclass(frozen=True)
class ZimpolScale:
    """Raw frame size per camera (rows, data columns per ADC half) and the numbers of frames/files."""

    name: str
    rows: int
    data_per_adc: int
    pol_ndit: int
    pol_cycles: int
    img_ndit: int
    img_files: int
    calib_ndit: int

    @property
    def layout(self) -> raw.RawLayout:
        return raw.RawLayout(rows=self.rows, data_per_adc=self.data_per_adc)


SCALES: dict[str, ZimpolScale] = {
    "small": ZimpolScale("small", 256, 128, 2, 2, 2, 4, 2),
    "medium": ZimpolScale("medium", 512, 256, 4, 3, 6, 6, 4),
    "full": ZimpolScale("full", zc.RAW_ROWS, zc.DATA_COLUMNS_PER_ADC, 10, 4, 20, 12, 10),
}


def default_disc(scale: ZimpolScale) -> DPIScene:
    """The polarimetric scene on the physical-pixel grid (3.6 mas/px) of ``scale``: ring at 300 mas.

    Fluxes are ADU/s per physical pixel; ``shape`` is the padded grid the dithered windows are cut
    from (the scene's star at its centre)."""
    pad = 2 * max(max(abs(dx), abs(dy)) for dx, dy in DITHER_PATTERN_PX)
    n = max(scale.rows, 2 * scale.data_per_adc) + 2 * pad
    return DPIScene(
        shape=(n, n),
        halo_peak=4000.0,
        halo_core_px=4.0,
        halo_slope=3.0,
        disc_peak=40.0,
        disc_radius_px=300.0 / zc.PIXEL_SCALE_MAS,
        disc_width_px=8.0,
        disc_dolp=0.3,
        ip_q=0.008,
        ip_u=-0.004,
        photon_noise=False,
        read_noise=0.0,
        n_cycles=1,
    )


@dataclass
class SimulatedZimpolFile(simulated_truth.SimulatedRawFile):
    """One written raw ZIMPOL file and its truth: read-out mode, filters, Stokes label (polarimetric
    science), dither (physical px, x/y), star position on the physical data grid of each camera
    (x, y), angles per frame (deg; NaN for calibrations)."""

    readout: str = ""
    filters: tuple[str, str] = ("", "")
    stokes: str | None = None
    dither_px: tuple[int, int] = (0, 0)
    star_xy_px: tuple[float, float] | None = None

    def setup_dict(self) -> dict[str, Any]:
        return {"readout": self.readout, "filters": list(self.filters)}

    def truth_dict(self) -> dict[str, Any]:
        return {
            "stokes": self.stokes,
            "dither_px": list(self.dither_px),
            "star_xy_px": None if self.star_xy_px is None else list(self.star_xy_px),
        }


@dataclass
class SimulatedZimpolNight:
    """Everything :func:`simulate_zimpol_night` wrote and the truth it injected."""

    out_dir: Path
    seed: int
    mode: str
    scale: ZimpolScale
    target: Target
    files: list[SimulatedZimpolFile]
    detectors: dict[int, sim.DetectorModel]
    disc: DPIScene | None
    companions: tuple[ZimpolCompanion, ...]
    truth_json: Path | None = None
    truth_fits: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    modulation_efficiency: tuple[float, float] = (1.0, 1.0)  # polarimetry: CAM1, CAM2

    def select(self, dpr_type: str | None = None, stokes: str | None = None) -> list[SimulatedZimpolFile]:
        """Files of a DPR TYPE and Stokes label (None = any), in time order."""
        return simulated_truth.select_files(self.files, dpr_type, None, stokes=stokes)

    def companion_truth(self) -> list[dict[str, Any]]:
        return [
            {
                "separation_mas": c.separation_mas,
                "separation_px": c.separation_mas / zc.REDUCED_PIXEL_SCALE_MAS,
                "pa_deg": c.pa_deg,
                "contrast": c.contrast,
            }
            for c in self.companions
        ]

    def disc_truth(self) -> dict[str, Any] | None:
        """The disc in reduced pixels (7.2 mas) and reduced-pixel fluxes (ADU/s), or None."""
        if self.disc is None:
            return None
        d = self.disc
        return {
            "radius_mas": d.disc_radius_px * zc.PIXEL_SCALE_MAS,
            "radius_px": d.disc_radius_px / 2.0,
            "width_px": d.disc_width_px / 2.0,
            "polarised_peak_adu_s": 2.0 * d.disc_peak,
            "dolp": d.disc_dolp,
            "ip_q": d.ip_q,
            "ip_u": d.ip_u,
            "modulation_efficiency": list(self.modulation_efficiency),
            "aolp": "azimuthal (Q_phi = P, U_phi = 0)",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "mode": self.mode,
            "scale": self.scale.name,
            "raw_shape_per_camera": list(self.scale.layout.shape),
            "target": self.target.__dict__,
            "pixel_scale_mas": zc.PIXEL_SCALE_MAS,
            "reduced_pixel_scale_mas": zc.REDUCED_PIXEL_SCALE_MAS,
            "filters": list(FILTERS[self.mode]),
            "readout": READOUT[self.mode],
            "companions": self.companion_truth(),
            "disc": self.disc_truth(),
            "pupil_offset_deg": sc.PUPIL_OFFSET_DEG,
            "true_north_deg": sc.TRUE_NORTH_DEG,
            "gain_e_per_adu": zc.GAIN_E_PER_ADU,
            "read_noise_e": zc.READ_NOISE_E,
            "files": [f.to_dict() for f in self.files],
        } | self.extra


# ----------------------------------------------------------------------------------------------
# Planning


@dataclass
class _Exposure(obs.PlannedExposure):
    dpr_tech: str = ""
    readout: str = ""
    stokes: str | None = None
    dither_px: tuple[int, int] = (0, 0)


def _plan(mode: str, scale: ZimpolScale, target: Target, night: str) -> list[_Exposure]:
    """The science template centred on the target's transit, then the morning calibrations."""
    readout, tech = READOUT[mode], TECHNIQUE[mode]
    # (DPR TYPE, DPR TECH, Stokes label, DIT, NDIT)
    roles: list[tuple[str, str, str | None, float, int]]
    if mode == "polarimetry":
        roles = [
            ("OBJECT", tech, s, SCIENCE_DIT_S[mode], scale.pol_ndit)
            for _ in range(scale.pol_cycles)
            for s in zc.STOKES_VALUES
        ]
    else:
        flux = ("OBJECT,FLUX", "IMAGE", None, FLUX_DIT_S, 2)
        roles = (
            [flux]
            + [("OBJECT", "IMAGE,CORONOGRAPHY", None, SCIENCE_DIT_S[mode], scale.img_ndit)] * scale.img_files
            + [flux]
        )

    def gap(dpr_type: str) -> float:
        return IMAGING_FILE_SPACING_S if mode == "imaging" and dpr_type == "OBJECT" else FILE_GAP_S

    duration = sum(ndit * (dit + DIT_DELAY_S) + gap(kind) for kind, _, _, dit, ndit in roles)
    start = transit_time(target, night) - TimeDelta(duration / 2.0, format="sec")
    tpl_start = Time(start.isot[:19], scale="utc").isot[:19]
    counters: dict[str, int] = {}

    def origfile(kind: str, when: str) -> str:
        counters[kind] = counters.get(kind, 0) + 1
        doy = Time(when).to_datetime().timetuple().tm_yday
        return f"SPHERE_ZIMPOL_{kind}{doy:03d}_{counters[kind]:04d}.fits"

    plan: list[_Exposure] = []
    t = start + TimeDelta(30.0, format="sec")
    tpl_id = {"polarimetry": "SPHERE_zimpol_pol_obs", "imaging": "SPHERE_zimpol_img_obs"}[mode]
    for expno, (dpr_type, dpr_tech, stokes, dit, ndit) in enumerate(roles, start=1):
        if plan:
            t = t + TimeDelta(gap(dpr_type) if plan[-1].dpr_type == dpr_type else FILE_GAP_S, format="sec")
        date_obs, fram_utc, t = file_times(t, dit, ndit)
        plan.append(
            _Exposure(
                dpr_catg="SCIENCE",
                dpr_type=dpr_type,
                dit=dit,
                ndit=ndit,
                nd="OPEN",
                date_obs=date_obs,
                fram_utc=fram_utc,
                tpl_id=tpl_id,
                tpl_name=f"ZIMPOL {mode}",
                tpl_start=tpl_start,
                tpl_expno=expno,
                tpl_nexp=len(roles),
                obs_id=2485500 if mode == "polarimetry" else 2485501,
                obs_name=f"{target.name.replace(' ', '')}_ZIMPOL_{mode[:3].upper()}",
                prog_id="0104.C-9999(B)",
                origfile=origfile("OBS", date_obs),
                dpr_tech=dpr_tech,
                readout=readout,
                stokes=stokes,
                dither_px=DITHER_PATTERN_PX[(expno - 1) % len(DITHER_PATTERN_PX)],
            )
        )
    t = Time(f"{Time(plan[0].date_obs).datetime.date().isoformat()}T10:30:00", scale="utc")
    if t < Time(plan[-1].fram_utc):
        t = Time(plan[-1].fram_utc) + TimeDelta(3600.0, format="sec")
    science_dits = sorted({e.dit for e in plan})
    calibs = (
        [("BIAS", 0.0, "SPHERE_zimpol_cal_bias", "BIAS")]
        + [("DARK", d, "SPHERE_zimpol_cal_dark", "DARK") for d in science_dits]
        + [("FLAT,LAMP", FLAT_DIT_S, "SPHERE_zimpol_cal_iflat", "IFLAT")]
    )
    for dpr_type, cdit, cal_tpl, kind in calibs:
        date_obs, fram_utc, t = file_times(
            t + TimeDelta(SETUP_GAP_S, format="sec"), max(cdit, 1e-3), scale.calib_ndit
        )
        plan.append(
            _Exposure(
                dpr_catg="CALIB",
                dpr_type=dpr_type,
                dit=cdit,
                ndit=scale.calib_ndit,
                nd="OPEN",
                date_obs=date_obs,
                fram_utc=fram_utc,
                tpl_id=cal_tpl,
                tpl_name=f"ZIMPOL {kind.lower()}",
                tpl_start=Time(date_obs).isot[:19],
                tpl_expno=1,
                tpl_nexp=1,
                obs_id=200313700,
                obs_name="Calibration",
                prog_id="60.A-9255(A)",
                origfile=origfile(kind, date_obs),
                dpr_tech=tech,
                readout=readout,
            )
        )
    return plan


# ----------------------------------------------------------------------------------------------
# Headers


def _build_header(
    exp: _Exposure, mode: str, target: Target, sky: obs.FileConditions | None, seed: int
) -> fits.Header:
    """Primary header of one raw ZIMPOL file (ZIMPOL keywords of :mod:`.constants`; the shared
    SPHERE cards of :mod:`hcdc.instruments.sphere.simulated_headers`)."""
    science = exp.dpr_catg == "SCIENCE"
    h = hdr.primary_header(exp, target, observer=True)
    cam1, cam2 = FILTERS[mode]
    cards: dict[str, tuple[Any, str]] = {
        "DET DIT1": (exp.dit, "[s] Integration time"),
        "DET DITDELAY": (DIT_DELAY_S, "[s] Delay before integration"),
        "DET FRAM UTC": (exp.fram_utc, "File Creation Time"),
        "DET ID": ("ZPL", "Detector system Id"),
        "DET NDIT": (exp.ndit, "Number of Sub-Integrations"),
        "DET READ CURNAME": (exp.readout, "Used readout mode name"),
        "DET SEQ UTC": (exp.date_obs, "Sequencer Start Time"),
        "DPR CATG": (exp.dpr_catg, "Observation category"),
        "DPR TECH": (exp.dpr_tech, "Observation technique"),
        "DPR TYPE": (exp.dpr_type, "Observation type"),
        "INS COMB VCOR": (
            CORONAGRAPH if "CORONOGRAPHY" in exp.dpr_tech else "V_NC_WF",
            "Visible coronograph combination",
        ),
        zc.FILTER_KEYWORDS[0]: ("OPEN", "ZIMPOL common filter wheel."),
        zc.FILTER_KEYWORDS[1]: (cam1, "ZIMPOL camera 1 filter."),
        zc.FILTER_KEYWORDS[2]: (cam2, "ZIMPOL camera 2 filter."),
    }
    for camera in zc.CAMERAS:
        kx, ky = zc.DITHER_KEYWORDS[camera]
        cards[kx] = (int(exp.dither_px[0]), f"CAM{camera} dither X [px]")
        cards[ky] = (int(exp.dither_px[1]), f"CAM{camera} dither Y [px]")
    if science:
        derot_mode = "SKY" if mode == "polarimetry" else "ELEV"
        cards["INS4 DROT2 MODE"] = (derot_mode, "Derotator mode.")
        assert sky is not None
        cards.update(hdr.derotator_pointing_cards(sky.radec_of_date))
        if exp.stokes:
            cards[zc.STOKES_KEYWORD] = (exp.stokes, "HWP position")
    else:
        cards["INS4 DROT2 MODE"] = ("STAT", "Derotator mode.")
    cards.update(hdr.observation_block_cards(exp))
    if science:
        cards["OBS TARG NAME"] = (target.name.replace(" ", ""), "OB target name")
    cards["SEQ ARM"] = ("ZIMPOL", "Name of the sub-system.")
    if science:
        assert sky is not None
        cards.update(hdr.telescope_cards(target, sky, hdr.paranal_site_cards()))
    cards.update(hdr.template_cards(exp))
    return hdr.close_header(h, cards, date_obs=exp.date_obs, simulator="sphere.zimpol", seed=seed)


# ----------------------------------------------------------------------------------------------
# Pixels


@dataclass
class _Model:
    mode: str
    scale: ZimpolScale
    detectors: dict[int, sim.DetectorModel]
    disc_iqu: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # padded physical grid, ADU/s/px
    disc_pad: int
    companions: tuple[ZimpolCompanion, ...]
    star_offset_px: tuple[float, float]  # (x, y) of the imaging star from the data-grid centre
    # polarimetry: modulation-demodulation efficiency of (CAM1, CAM2): the states are (I +- eff S)/2
    modulation_efficiency: tuple[float, float] = (1.0, 1.0)
    speckles: Any = None  # imaging: evolving speckle field (fixed on the detector, pupil tracking)
    t_ref: Time | None = None
    #: True: the sky turned counter-clockwise by DEROT on the detector (hcdc's old sense, the simulator
    #: before the sense fix); False: clockwise by DEROT, the physical sense of vlt-sphere/VIP/IRDAP
    #: (:func:`hcdc.science.orientation.rotation_from_derotation`, docs/conventions.md)
    legacy_sky_sense: bool = False


def _pair_rows(fine: np.ndarray) -> np.ndarray:
    """Sum physical rows in pairs (the micro-lenses put both onto the open row): (2m, x) -> (m, x)."""
    return fine[0::2] + fine[1::2]


def _window(image: np.ndarray, pad: int, rows: int, cols: int, dither: tuple[int, int]) -> np.ndarray:
    """The data window of a padded sky grid seen with the star moved by ``dither`` (x, y) px."""
    dx, dy = dither
    return image[pad - dy : pad - dy + rows, pad - dx : pad - dx + cols]


def _polarimetric_states(model: _Model, exp: _Exposure, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """Modulation states A, B (m, x) in ADU/s of one camera for one HWP position (see :mod:`.raw`)."""
    assert model.disc_iqu is not None
    i, q, u = model.disc_iqu
    rows, cols = model.scale.layout.data_shape
    sign = {"Qplus": 1.0, "Qminus": -1.0, "Uplus": 1.0, "Uminus": -1.0}[exp.stokes or ""]
    s = sign * (q if (exp.stokes or "").startswith("Q") else u)
    i_img = _pair_rows(_window(i, model.disc_pad, rows, cols, exp.dither_px))
    s_img = _pair_rows(_window(s, model.disc_pad, rows, cols, exp.dither_px))
    eff = model.modulation_efficiency[camera - 1]
    plus, minus = 0.5 * (i_img + eff * s_img), 0.5 * (i_img - eff * s_img)
    return (plus, minus) if camera == 1 else (minus, plus)


def _speckle_light(model: _Model, exp: _Exposure, camera: int, time_s: float) -> np.ndarray:
    """Speckles (physical grid, ADU/s) of one camera at ``time_s``: the evolving field of
    :func:`hcdc.science.simulation.speckles.make_evolving_speckles` (the IRDIS/IFS simulators'),
    fixed on the detector (pupil tracking). Drawn once per file: the field evolves over hours,
    a file lasts seconds."""
    rows, cols = model.scale.layout.data_shape
    image = np.zeros((rows, cols))
    if model.speckles is None:
        return image
    wave = zc.filter_wavelength_nm(FILTERS[model.mode][camera - 1])
    cy, cx = frame_center((rows, cols))
    star = (cx + model.star_offset_px[0] + exp.dither_px[0], cy + model.star_offset_px[1] + exp.dither_px[1])
    optics = sim.BandOptics(wave, SPECKLE_BANDWIDTH_NM, zc.PIXEL_SCALE_MAS, sc.TELESCOPE_DIAMETER_M)
    sim.add_speckles(image, star, STAR_FLUX_ADU_S, model.speckles, optics, time_s)
    return image


def _imaging_light(
    model: _Model, exp: _Exposure, camera: int, derot_deg: float, speckles: np.ndarray
) -> np.ndarray:
    """Image rows (m, x) in ADU/s of one camera for one frame: Airy star (none behind the
    coronagraph), AO halo, the file's ``speckles`` (:func:`_speckle_light`), companions."""
    rows, cols = model.scale.layout.data_shape
    wave = zc.filter_wavelength_nm(FILTERS[model.mode][camera - 1])
    lod = sc.lambda_over_d_px(wave, zc.PIXEL_SCALE_MAS)
    cy, cx = frame_center((rows, cols))
    star = (cx + model.star_offset_px[0] + exp.dither_px[0], cy + model.star_offset_px[1] + exp.dither_px[1])
    fine = sim.halo_image((rows, cols), star, STAR_FLUX_ADU_S, lod, fraction=HALO_FRACTION)
    radius = 12.0 * lod
    coronagraphic = "CORONOGRAPHY" in exp.dpr_tech
    mask_px = CORONAGRAPH_RADIUS_MAS / zc.PIXEL_SCALE_MAS
    if not coronagraphic:  # behind the Lyot mask the star core is removed (transmission ~0)
        sim.add_airy(fine, star[0], star[1], STAR_FLUX_ADU_S * (1.0 - HALO_FRACTION), lod, radius)
    fine += speckles
    for c in model.companions:
        sep_px = c.separation_mas / zc.PIXEL_SCALE_MAS
        turn = derot_deg if model.legacy_sky_sense else float(rotation_from_derotation(derot_deg))
        x, y = sim.companion_detector_xy(star, sep_px, c.pa_deg, turn)
        through = float(sim.coronagraph_transmission(sep_px, mask_px)) if coronagraphic else 1.0
        sim.add_airy(fine, x, y, STAR_FLUX_ADU_S * (1.0 - HALO_FRACTION) * c.contrast * through, lod, radius)
    return _pair_rows(fine)


def _render(
    exp: _Exposure, model: _Model, radec: tuple[float, float], seed: int
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Raw uint16 cubes per camera and the per-frame truth of one planned exposure."""
    rng = file_rng(seed, exp.date_obs)
    layout = model.scale.layout
    science = exp.dpr_catg == "SCIENCE"
    nan = np.full(exp.ndit, np.nan)
    start, mid, end = dit_times(exp.date_obs, exp.fram_utc, exp.ndit, max(exp.dit, 1e-3), DIT_DELAY_S)
    ra, dec = radec
    parang = parallactic_angle(mid, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)
    if model.mode == "imaging":
        derot = derotation_angles(parang, sc.PUPIL_OFFSET_DEG, sc.TRUE_NORTH_DEG)
    else:  # field stabilised, POSANG 0: only True North (hcdc's ZIMPOL convention, level1)
        derot = np.full(exp.ndit, sc.TRUE_NORTH_DEG)
    phases = raw.frame_phases(exp.ndit)
    polarimetric = exp.readout in zc.POLARIMETRIC_READOUTS
    flux = 1.0 + FRAME_FLUX_RMS * rng.standard_normal(exp.ndit) if science else np.ones(exp.ndit)
    cubes: dict[int, np.ndarray] = {}
    for camera in zc.CAMERAS:
        cube = np.empty((exp.ndit,) + layout.shape, dtype=np.uint16)
        states = _polarimetric_states(model, exp, camera) if science and polarimetric else None
        speckles = None
        if science and not polarimetric:
            t_mid = (
                float((mid[exp.ndit // 2] - model.t_ref).to_value("s")) if model.t_ref is not None else 0.0
            )
            speckles = _speckle_light(model, exp, camera, t_mid)
        for k in range(exp.ndit):
            if exp.dpr_type in {"BIAS", "DARK"}:
                data = np.zeros(layout.data_shape)
            elif exp.dpr_type == "FLAT,LAMP":
                lamp = np.full((layout.rows // 2, layout.data_shape[1]), 2.0 * LAMP_ADU_S)
                if polarimetric:
                    data = raw.interleave_polarimetry(0.5 * lamp, 0.5 * lamp, int(phases[k]))
                else:
                    data = raw.interleave_imaging(lamp)
            elif states is not None:
                data = raw.interleave_polarimetry(states[0], states[1], int(phases[k])) * flux[k]
            else:
                assert speckles is not None
                light = _imaging_light(model, exp, camera, float(derot[k]), speckles)
                data = raw.interleave_imaging(light) * flux[k]
            light = raw.insert_data(data, layout)
            adu = model.detectors[camera].readout(light, exp.dit, rng)
            cube[k] = np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
        cubes[camera] = cube
    truth = {
        "mjd_mid": mid.mjd,
        "parang": parang if science else nan,
        "derot": derot if science else nan,
        "parang_start_end": (
            float(parallactic_angle(start[:1], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
            float(parallactic_angle(end[-1:], ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[0]),
        ),
    }
    return cubes, truth


def _star_xy(model: _Model, exp: _Exposure) -> tuple[float, float]:
    """Star (x, y) on the physical data grid (columns, physical rows) of a science file."""
    rows, cols = model.scale.layout.data_shape
    cy, cx = frame_center((rows, cols))
    if model.mode == "imaging":
        return (
            cx + model.star_offset_px[0] + exp.dither_px[0],
            cy + model.star_offset_px[1] + exp.dither_px[1],
        )
    n = model.disc_iqu[0].shape[0] if model.disc_iqu is not None else 0
    c = frame_center((n, n))
    # padded-grid star (c) seen through the window starting at pad - dither
    return (c[1] - model.disc_pad + exp.dither_px[0], c[0] - model.disc_pad + exp.dither_px[1])


# ----------------------------------------------------------------------------------------------
# Entry point


def simulate_zimpol_night(
    out_dir: str | Path,
    *,
    mode: str = "polarimetry",
    seed: int = 0,
    scale: str = "small",
    companions: tuple[ZimpolCompanion, ...] | list[ZimpolCompanion] | None = None,
    disc: DPIScene | None = None,
    target: Target = FIFTY_ONE_ERI,
    night: str = "2018-11-30",
    colon_in_names: bool = True,
    progress: Any = None,
    modulation_efficiency: tuple[float, float] = (1.0, 1.0),
    legacy_sky_sense: bool = False,
    disc_bright_side: tuple[float, float] | None = None,
) -> SimulatedZimpolNight:
    """Write a night of raw ZIMPOL files of ``mode`` (``imaging`` or ``polarimetry``) into ``out_dir``.

    ``scale``: ``small`` | ``medium`` | ``full`` (:data:`SCALES`). ``companions`` (imaging) default
    to :data:`DEFAULT_COMPANIONS`; ``disc`` (polarimetry) to :func:`default_disc`. Deterministic
    for a seed. ``modulation_efficiency`` (polarimetry; CAM1, CAM2, each in (0, 1]): the fraction of
    the polarised signal that the modulation and charge shifting keep in the two states,
    ``(I +- eff S)/2`` (1 = ideal, the default; the real value is measured by ZIMPOL's
    modulation/demodulation-efficiency calibration). The sky is turned clockwise by ``DEROT`` on
    the detector, as on the real instrument (frame ``k`` turned counter-clockwise by ``DEROT[k]`` is
    north up: vlt-sphere/VIP/IRDAP, docs/conventions.md); ``legacy_sky_sense=True`` turns it the
    other way, as this simulator did before the sense was fixed (and then leaves Stokes I of the
    polarimetric scene unturned, as it did). ``disc_bright_side`` (polarimetry): ``(pa_deg,
    amplitude)``, the disc's polarised brightness multiplied by ``1 + amplitude cos(PA - pa_deg)``
    (a bright side at sky PA ``pa_deg``, east of north; 0 <= amplitude < 1). Raises ``ValueError``
    for an unknown mode/scale, a companion outside the field or an efficiency outside (0, 1].
    """
    if not all(0.0 < e <= 1.0 for e in modulation_efficiency) or len(modulation_efficiency) != 2:
        raise ValueError(
            f"modulation efficiency must be two values (CAM1, CAM2) in (0, 1], got {modulation_efficiency}"
        )
    if mode not in MODES:
        raise ValueError(f"unknown ZIMPOL mode {mode!r}; use one of {', '.join(MODES)}")
    if disc_bright_side is not None and not 0.0 <= disc_bright_side[1] < 1.0:
        raise ValueError(f"disc bright-side amplitude must be in [0, 1), got {disc_bright_side[1]}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    sc_obj = SCALES[scale]
    layout = sc_obj.layout
    companions = tuple(DEFAULT_COMPANIONS if companions is None else companions) if mode == "imaging" else ()
    field_mas = 0.5 * min(layout.data_shape) * zc.PIXEL_SCALE_MAS - 20.0
    for c in companions:
        if not 0 < c.separation_mas < field_mas or not 0 < c.contrast < 1:
            raise ValueError(
                f"companion at {c.separation_mas} mas, contrast {c.contrast}: need 0 < separation < "
                f"{field_mas:.0f} mas (this scale's field) and 0 < contrast < 1"
            )
    root = np.random.default_rng(seed)
    det_seeds = [int(x) for x in root.integers(0, 2**31, 2)]
    detectors = {
        camera: sim.make_detector(
            layout.shape,
            np.random.default_rng(det_seeds[camera - 1]),
            field_width=layout.columns // 2,
            gain=zc.GAIN_E_PER_ADU,
            read_noise_e=zc.READ_NOISE_E,
            bias_adu=BIAS_ADU,
            dark_current_adu_s=DARK_CURRENT_ADU_S,
            hot_fraction=5e-4,
            dead_fraction=3e-4,
            nonlinear_fraction=0.0,
        )
        for camera in zc.CAMERAS
    }
    disc_iqu = None
    pad = 0
    if mode == "polarimetry":
        disc = disc or default_disc(sc_obj)
        n = disc.shape[0]
        pad = (n - max(layout.data_shape)) // 2
        if disc.shape[0] != disc.shape[1] or pad < max(max(abs(a), abs(b)) for a, b in DITHER_PATTERN_PX):
            raise ValueError(
                f"disc grid {disc.shape} must be square and larger than the data {layout.data_shape}"
            )
        truth = simulate_dpi_beams(disc, seed=0).truth  # noiseless: only the sky maps are used
        i = truth.i
        # polarisation created before the half-wave plate, then the field orientation (True North)
        q_sky, u_sky = truth.q, truth.u
        if disc_bright_side is not None:
            side = 1.0 + disc_bright_side[1] * np.cos(
                np.radians(position_angle_from_star(q_sky.shape) - disc_bright_side[0])
            )
            q_sky, u_sky = q_sky * side, u_sky * side
        q_in, u_in = q_sky + disc.ip_q * i, u_sky + disc.ip_u * i
        # field tracking, POSANG 0: DEROT = True North (level1.frame_angles)
        turn = sc.TRUE_NORTH_DEG if legacy_sky_sense else float(rotation_from_derotation(sc.TRUE_NORTH_DEG))
        q_det, u_det = rotate_stokes(q_in, u_in, turn, order=1, fill_value=0.0)
        if not legacy_sky_sense:
            i = rotate_frame(i, turn, order=1, fill_value=0.0)
        disc_iqu = (i, q_det, u_det)
    else:
        disc = None
    srng = np.random.default_rng(int(root.integers(0, 2**31)))
    model = _Model(
        mode=mode,
        scale=sc_obj,
        detectors=detectors,
        disc_iqu=disc_iqu,
        modulation_efficiency=(float(modulation_efficiency[0]), float(modulation_efficiency[1])),
        disc_pad=pad,
        companions=companions,
        star_offset_px=(float(srng.uniform(-3, 3)), float(srng.uniform(-3, 3))),
        speckles=make_evolving_speckles(srng) if mode == "imaging" else None,
        legacy_sky_sense=legacy_sky_sense,
    )
    plan = _plan(mode, sc_obj, target, night)
    model.t_ref = Time(plan[0].date_obs, scale="utc")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    conditions = obs.AmbientConditions(np.random.default_rng(int(root.integers(0, 2**31))))
    files: list[SimulatedZimpolFile] = []
    for n_done, exp in enumerate(plan, start=1):
        t0, t1 = Time(exp.date_obs, scale="utc"), Time(exp.fram_utc, scale="utc")
        ra_used, dec_used = hdr.pointing_as_written(target, t0)
        cubes, truth = _render(exp, model, (ra_used, dec_used), seed)
        science = exp.dpr_catg == "SCIENCE"
        sky = (
            obs.file_conditions(t0, t1, (ra_used, dec_used), truth["parang_start_end"], conditions)
            if science
            else None
        )
        header = _build_header(exp, mode, target, sky, seed)
        hdus: list[Any] = [fits.PrimaryHDU(header=header)]
        for camera in zc.CAMERAS:
            ext = fits.ImageHDU(cubes[camera], name=f"CAM{camera}")
            ext.header["HIERARCH ESO DET CHIP NAME"] = (zc.CHIP_NAMES[camera], "Detector chip name")
            ext.header["HIERARCH ESO DET CHIP INDEX"] = (camera, "Chip index")
            hdus.append(ext)
        path = out / archive_name(exp.date_obs, colon=colon_in_names)
        fits.HDUList(hdus).writeto(path, overwrite=True)
        files.append(
            SimulatedZimpolFile(
                **simulated_truth.raw_file_fields(path, exp, truth),
                dpr_tech=exp.dpr_tech,
                mode="ZIMPOL-POL" if mode == "polarimetry" else "ZIMPOL-IMG",
                readout=exp.readout,
                filters=FILTERS[mode],
                stokes=exp.stokes,
                dither_px=exp.dither_px,
                star_xy_px=_star_xy(model, exp) if science else None,
            )
        )
        if progress is not None:
            progress(n_done, len(plan), path.name)
    night_truth = SimulatedZimpolNight(
        out_dir=out,
        seed=seed,
        mode=mode,
        scale=sc_obj,
        target=target,
        files=files,
        detectors=detectors,
        disc=disc,
        companions=companions,
        modulation_efficiency=model.modulation_efficiency,
        extra={
            "sky_sense": "legacy (counter-clockwise by DEROT)"
            if legacy_sky_sense
            else "physical (clockwise by DEROT)",
            **(
                {"disc_bright_side": {"pa_deg": disc_bright_side[0], "amplitude": disc_bright_side[1]}}
                if disc_bright_side is not None
                else {}
            ),
        },
    )
    _write_truth(night_truth)
    return night_truth


def true_polarised_map(disc: DPIScene, shape: tuple[int, int]) -> np.ndarray:
    """The disc's polarised brightness P on the reduced grid ``shape`` (7.2 mas px, star at
    :func:`frame_center`), in ADU/s per reduced pixel: the ring sampled at reduced-pixel centres."""
    cy, cx = frame_center(shape)
    y, x = np.indices(shape, dtype=float)
    r_phys = 2.0 * np.hypot(y - cy, x - cx)
    return 2.0 * disc.disc_peak * np.exp(-0.5 * ((r_phys - disc.disc_radius_px) / disc.disc_width_px) ** 2)


def _write_truth(night: SimulatedZimpolNight) -> None:
    truth_fits = simulated_truth.write_truth_json(night)
    hdus: list[Any] = [fits.PrimaryHDU()]
    for camera in zc.CAMERAS:
        for hdu in simulated_truth.detector_map_hdus(night.detectors[camera])[1:]:
            hdu.name = f"{hdu.name}_CAM{camera}"
            hdus.append(hdu)
    if night.disc is not None:
        rows, cols = night.scale.layout.data_shape
        shape = (rows // 2, cols // 2)
        p = fits.ImageHDU(true_polarised_map(night.disc, shape).astype(np.float32), name="DISC_P")
        p.header["BUNIT"] = "adu/s"
        p.header["COMMENT"] = "true polarised brightness = Q_phi; U_phi = 0; star at (ny//2, nx//2)"
        hdus.append(p)
    fits.HDUList(hdus).writeto(truth_fits, overwrite=True)
