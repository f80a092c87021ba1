"""Simulated IRDIS dual-polarisation imaging (DPI) beams with known truth (pure numpy).

The scene (north up / east left, star at :func:`hcdc.science.geometry.frame_center`, fluxes in
ADU per frame with a gain of 1 e-/ADU):

* an **unpolarised stellar halo** ``I_star(r) = halo_peak / (1 + (r/halo_core_px)^2)^(halo_slope/2)``;
* a **centrally symmetric ring disc** of polarised brightness
  ``P(r) = disc_peak * exp(-(r - disc_radius_px)^2 / (2 disc_width_px^2))``, degree of
  polarisation ``disc_dolp`` (its total intensity is ``P / disc_dolp``), polarised
  **azimuthally** (perpendicular to the star direction): ``Q = -P cos 2phi``,
  ``U = -P sin 2phi`` with ``phi`` the position angle east of north, so the true
  ``Q_phi = P`` and ``U_phi = 0`` (:func:`hcdc.science.polarimetry.azimuthal_stokes`);
* **instrumental polarisation** created before the half-wave plate, a fixed fraction of the total
  intensity: ``Q += ip_q * I``, ``U += ip_u * I`` (dimensionless fractions; not removed by the
  double difference/ratio);
* a **beam transmission mismatch**: ordinary beam ``o = t_o (I + S)/2``, extraordinary
  ``e = t_e (I - S)/2`` with ``S = +Q, -Q, +U, -U`` at the HWP positions Q+, Q-, U+, U-;
* optional **frame-to-frame flux changes** (seeing, ``frame_flux_rms``, one factor per HWP
  position and cycle, common to both beams);
* **noise**: Poisson photon noise on each beam (``photon_noise``) plus Gaussian read noise
  ``read_noise`` (ADU).

Not modelled (yet): the IRDIS detector layout (two beams side by side on the raw frame), field
rotation, the cross-talk/efficiency of the Mueller model, dark/flat/bad pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hcdc.science.geometry import distance_map
from hcdc.science.polarimetry.maps import position_angle_from_star
from hcdc.science.polarimetry.stokes import StokesImages

__all__ = [
    "DPIScene",
    "DPISimulation",
    "PolarisedRing",
    "hwp_measured_stokes",
    "ring_sky_stokes_on_detector",
    "ring_stokes_on_detector",
    "simulate_dpi_beams",
]


@dataclass(frozen=True)
class DPIScene:
    """Parameters of a simulated DPI sequence (units in the field comments)."""

    shape: tuple[int, int] = (128, 128)  # (ny, nx) pixels of one beam
    halo_peak: float = 1.0e6  # ADU/frame at the star, per both beams together
    halo_core_px: float = 4.0  # px
    halo_slope: float = 3.0  # power-law index of the halo at large radii
    disc_peak: float = 100.0  # ADU/frame, peak polarised brightness
    disc_radius_px: float = 30.0  # px
    disc_width_px: float = 4.0  # px (Gaussian sigma of the ring)
    disc_dolp: float = 0.3  # degree of linear polarisation of the disc light
    ip_q: float = 0.01  # instrumental Q/I before the HWP
    ip_u: float = -0.005  # instrumental U/I before the HWP
    t_ordinary: float = 1.0  # transmission of the ordinary (left) beam
    t_extraordinary: float = 0.97  # transmission of the extraordinary (right) beam
    frame_flux_rms: float = 0.0  # fractional rms of the flux of each HWP frame
    read_noise: float = 5.0  # ADU rms per pixel per frame
    photon_noise: bool = True  # False: expected counts (plus read noise), for exact checks
    n_cycles: int = 4  # number of Q+ Q- U+ U- cycles


@dataclass(frozen=True)
class DPISimulation:
    """Simulated beams and the truth they were drawn from.

    ``beams``: ``(n_cycles, 4, 2, ny, nx)`` ADU (HWP Q+ Q- U+ U-, beam ordinary/extraordinary),
    the input of :func:`hcdc.science.polarimetry.stokes_from_beams`. ``truth``: the sky Stokes
    maps **without** instrumental polarisation. ``disc_polarised``: the disc's polarised
    brightness ``P`` (= true ``Q_phi``). ``scene``: the parameters.
    """

    beams: np.ndarray
    truth: StokesImages
    disc_polarised: np.ndarray
    scene: DPIScene = field(repr=False)


def _sky_stokes(scene: DPIScene) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sky I, Q, U and the disc polarised brightness P (ADU/frame) of ``scene``."""
    r = distance_map(scene.shape)
    halo = scene.halo_peak / (1.0 + (r / scene.halo_core_px) ** 2) ** (scene.halo_slope / 2.0)
    p = scene.disc_peak * np.exp(-0.5 * ((r - scene.disc_radius_px) / scene.disc_width_px) ** 2)
    two_phi = np.radians(2.0 * position_angle_from_star(scene.shape))
    i = halo + p / scene.disc_dolp
    return i, -p * np.cos(two_phi), -p * np.sin(two_phi), p


def simulate_dpi_beams(scene: DPIScene | None = None, seed: int = 0) -> DPISimulation:
    """Draw ``scene.n_cycles`` noisy HWP cycles of ordinary/extraordinary beams (see module doc)."""
    scene = scene or DPIScene()
    if not 0 < scene.disc_dolp <= 1:
        raise ValueError(f"disc_dolp must be in (0, 1], got {scene.disc_dolp}")
    if scene.t_ordinary <= 0 or scene.t_extraordinary <= 0:
        raise ValueError("beam transmissions must be > 0")
    rng = np.random.default_rng(seed)
    i, q, u, p = _sky_stokes(scene)
    q_in, u_in = q + scene.ip_q * i, u + scene.ip_u * i
    signed = np.stack([q_in, -q_in, u_in, -u_in])  # S at Q+ Q- U+ U-
    ideal = np.stack(
        [scene.t_ordinary * 0.5 * (i + signed), scene.t_extraordinary * 0.5 * (i - signed)], axis=1
    )  # (4, 2, ny, nx)
    flux = 1.0 + scene.frame_flux_rms * rng.standard_normal((scene.n_cycles, 4, 1, 1, 1))
    expected = np.clip(flux * ideal[None], 0.0, None)
    counts = rng.poisson(expected).astype(float) if scene.photon_noise else expected
    beams = counts + scene.read_noise * rng.standard_normal(expected.shape)
    truth = StokesImages(i=i, q=q, u=u, i_q=i, i_u=i)
    return DPISimulation(beams=beams, truth=truth, disc_polarised=p, scene=scene)


# ----------------------------------------------------------------------------------------------
# A polarised ring on the detector, for the raw-file simulator
# (hcdc.instruments.sphere.irdis.simulate_dpi)


@dataclass(frozen=True)
class PolarisedRing:
    """A face-on ring disc polarised azimuthally (true ``Q_phi = P``, ``U_phi = 0``).

    Polarised brightness (ADU/s per pixel at throughput 1, before flat and ND)
    ``P(r, PA) = peak * exp(-(r - radius_px)^2 / (2 width_px^2))
    * (1 + asymmetry cos(PA - asymmetry_pa_deg))``
    with ``PA`` the position angle on the sky (deg east of north): the azimuthal brightness
    asymmetry makes the derotation visible (a wrong sense or angle moves the bright side).
    Total intensity ``P / dolp``. ``radius_px``/``width_px`` in pixels of the IRDIS plate scale.
    """

    peak: float
    radius_px: float = 30.0
    width_px: float = 4.0
    dolp: float = 0.3
    asymmetry: float = 0.5
    asymmetry_pa_deg: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.dolp <= 1:
            raise ValueError(f"ring dolp must be in (0, 1], got {self.dolp}")
        if not 0 <= self.asymmetry < 1:
            raise ValueError(f"ring asymmetry must be in [0, 1), got {self.asymmetry}")
        if self.peak < 0 or self.radius_px <= 0 or self.width_px <= 0:
            raise ValueError("ring peak must be >= 0, radius and width > 0 px")

    def polarised_brightness(self, separation_px: np.ndarray, pa_deg: np.ndarray) -> np.ndarray:
        """``P`` at separations (px) and sky position angles (deg east of north)."""
        radial = np.exp(-0.5 * ((np.asarray(separation_px) - self.radius_px) / self.width_px) ** 2)
        side = 1.0 + self.asymmetry * np.cos(np.radians(np.asarray(pa_deg) - self.asymmetry_pa_deg))
        return self.peak * radial * side

    def truth_map(self, shape: tuple[int, int]) -> np.ndarray:
        """``P`` (= true ``Q_phi``) north up / east left, star at
        :func:`~hcdc.science.geometry.frame_center`."""
        return self.polarised_brightness(distance_map(shape), position_angle_from_star(shape))


def ring_stokes_on_detector(
    ring: PolarisedRing,
    shape: tuple[int, int],
    star_xy: tuple[float, float],
    derot_deg: float,
    anamorphism_xy: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stokes I, Q, U (ADU/s per px) of ``ring`` on a detector field of ``shape``.

    The detector image is the north-up sky turned counter-clockwise by ``derot_deg`` and
    compressed by ``anamorphism_xy`` (the convention of
    :func:`hcdc.science.simulation.irdis.sky_to_detector_offset`, so that
    :func:`hcdc.science.geometry.derotate` with ``derot_deg`` undoes it); the star is at
    ``star_xy`` = (x, y). Q and U are in the **detector** frame (reference direction +y): an
    azimuthal polarisation stays azimuthal about the star in any rotated frame, so
    ``Q = -P cos 2 phi_det``, ``U = -P sin 2 phi_det`` with ``phi_det`` the position angle on the
    detector; the sky position angle ``phi_det - derot_deg`` sets the brightness.
    """
    y, x = np.indices(shape, dtype=float)
    dx = (x - star_xy[0]) * anamorphism_xy[0]
    dy = (y - star_xy[1]) * anamorphism_xy[1]
    r = np.hypot(dx, dy)
    pa_det = np.degrees(np.arctan2(-dx, dy)) % 360.0
    p = ring.polarised_brightness(r, pa_det - derot_deg)
    two_phi = np.radians(2.0 * pa_det)
    return p / ring.dolp, -p * np.cos(two_phi), -p * np.sin(two_phi)


def ring_sky_stokes_on_detector(
    ring: PolarisedRing,
    shape: tuple[int, int],
    star_xy: tuple[float, float],
    derot_deg: float,
    anamorphism_xy: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky Stokes I, Q, U (ADU/s per px; Q, U in the **sky** frame, IAU: north reference, angles
    east of north) of ``ring`` at each pixel of a detector field of ``shape``.

    The detector shows the north-up sky turned **clockwise** by ``derot_deg`` (the sense in
    which IRDAP and VIP derotate SPHERE frames, counter-clockwise by the derotation angle, and the
    one in which a pupil-tracking field turns: ``PA_det = PA_sky - derot``), compressed by
    ``anamorphism_xy``; the star at ``star_xy`` = (x, y). The Stokes vector is not turned: a
    polarimetric instrument model maps it to the detector.
    """
    y, x = np.indices(shape, dtype=float)
    dx = (x - star_xy[0]) * anamorphism_xy[0]
    dy = (y - star_xy[1]) * anamorphism_xy[1]
    r = np.hypot(dx, dy)
    pa_sky = (np.degrees(np.arctan2(-dx, dy)) + derot_deg) % 360.0
    p = ring.polarised_brightness(r, pa_sky)
    two_phi = np.radians(2.0 * pa_sky)
    return p / ring.dolp, -p * np.cos(two_phi), -p * np.sin(two_phi)


def hwp_measured_stokes(
    i: np.ndarray, q: np.ndarray, u: np.ndarray, label: str, ip_q: float = 0.0, ip_u: float = 0.0
) -> np.ndarray:
    """The Stokes parameter ``S`` the beams measure at HWP position ``label``, IP included.

    ``Qplus`` -> ``Q + ip_q I``, ``Qminus`` -> ``-(Q + ip_q I)``, ``Uplus`` -> ``U + ip_u I``,
    ``Uminus`` -> ``-(U + ip_u I)`` (instrumental polarisation as fractions of I, created before
    the HWP). Then the ordinary beam is ``(I + S)/2`` and the extraordinary ``(I - S)/2``.
    """
    signs = {"Qplus": (1.0, "q"), "Qminus": (-1.0, "q"), "Uplus": (1.0, "u"), "Uminus": (-1.0, "u")}
    if label not in signs:
        raise ValueError(f"unknown HWP position {label!r}; use one of {', '.join(signs)}")
    sign, which = signs[label]
    return sign * (q + ip_q * i) if which == "q" else sign * (u + ip_u * i)
