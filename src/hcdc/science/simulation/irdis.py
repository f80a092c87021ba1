"""Pure scene and detector models for simulating raw SPHERE/IRDIS frames.

Arrays in, arrays out: no file I/O, no instrument imports (every SPHERE constant is passed as an
argument; :mod:`hcdc.instruments.sphere.irdis.simulate` supplies them from
:mod:`hcdc.instruments.sphere.constants`).

Conventions
-----------
* Images are indexed ``[y, x]``; positions are given as ``(x, y)`` in pixels, 0-based, on the
  array they are drawn on (one IRDIS field, or the whole raw frame).
* Fluxes of sources are in ADU/s **before** the flat field, the neutral density and the
  coronagraph: ``star_flux`` is the flux of the diffraction-limited core of the stellar PSF
  (integrated over the whole plane); a companion of contrast ``c`` has core flux
  ``c * star_flux``. The AO halo, the quasi-static speckles and the waffle spots are extra light
  expressed as fractions of ``star_flux``.
* The PSF core is an Airy pattern of an unobstructed circular pupil of diameter ``D`` (the
  telescope diameter): ``I(r) = I0 [2 J1(x)/x]^2`` with ``x = pi r / (lambda/D)``, normalised so
  that its integral over the plane is the source flux (``I0 = flux * pi / 4 / (lambda/D)^2`` per
  pixel). Polychromatic sources are the mean of ``n_sub`` monochromatic Airy patterns spread
  uniformly over the filter band (top-hat filter).
* Pupil tracking: the sky turns on the detector. A companion at position angle ``PA`` (deg east
  of north) appears on the detector at "detector PA" ``PA + derot``, where ``derot`` is the
  derotation angle of :func:`hcdc.science.geometry.derotate` (turning the frame clockwise by
  ``derot`` puts north up / east left). Detector-fixed features (speckles, waffle spots) do not
  turn.
* Anamorphism: the optics compress the image along ``y`` by ``1 / anamorphism_xy[1]`` (the
  reduction stretches it back by ``anamorphism_xy``; vlt-sphere uses (1.0000, 1.0062) for
  IRDIS). Offsets from the star are divided by ``anamorphism_xy`` on the detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from hcdc.science import geometry
from hcdc.science.simulation.speckles import EvolvingSpeckles, speckle_intensity

__all__ = [
    "RAD_TO_MAS",
    "BandOptics",
    "sub_wavelengths_nm",
    "airy_profile",
    "airy_encircled_energy",
    "add_airy",
    "add_airy_many",
    "add_polychromatic_airy",
    "sky_to_detector_offset",
    "companion_detector_xy",
    "waffle_spot_xy",
    "make_leak_residual",
    "SpeckleModel",
    "make_speckles",
    "add_speckles",
    "halo_image",
    "coronagraph_transmission",
    "StarScene",
    "render_star_field",
    "DetectorModel",
    "make_detector",
    "illumination_mask",
]

#: Milliarcseconds per radian.
RAD_TO_MAS = 180.0 / np.pi * 3600.0 * 1000.0


@dataclass(frozen=True)
class BandOptics:
    """Optics of one IRDIS field: filter centre and width (nm), plate scale (mas/px), D (m)."""

    wavelength_nm: float
    bandwidth_nm: float
    pixel_scale_mas: float
    telescope_diameter_m: float

    def lambda_over_d_px(self, wavelength_nm: float | None = None) -> float:
        """lambda/D in pixels at ``wavelength_nm`` (default: the band centre)."""
        wl = self.wavelength_nm if wavelength_nm is None else wavelength_nm
        return wl * 1e-9 / self.telescope_diameter_m * RAD_TO_MAS / self.pixel_scale_mas


def sub_wavelengths_nm(wavelength_nm: float, bandwidth_nm: float, n_sub: int) -> np.ndarray:
    """``n_sub`` wavelengths (nm) sampling a top-hat band uniformly (bin centres)."""
    if n_sub < 1:
        raise ValueError(f"n_sub must be >= 1, got {n_sub}")
    edges = wavelength_nm - bandwidth_nm / 2.0 + bandwidth_nm * (np.arange(n_sub) + 0.5) / n_sub
    return edges


def _airy_exact(r_ld: np.ndarray) -> np.ndarray:
    x = np.pi * np.asarray(r_ld, dtype=np.float64)
    out = np.ones_like(x)
    nz = x > 1e-8
    out[nz] = (2.0 * special.j1(x[nz]) / x[nz]) ** 2
    return out


# Tabulated Airy profile (step 1e-3 lambda/D up to 64 lambda/D): linear interpolation in it is
# ~10x faster than evaluating J1 and accurate to ~1e-6 of the peak, which matters when
# rendering hundreds of stamps per frame.
_AIRY_STEP_LD = 1e-3
_AIRY_TABLE = _airy_exact(np.arange(0.0, 64.0 + 2 * _AIRY_STEP_LD, _AIRY_STEP_LD))


def airy_profile(r_ld: np.ndarray) -> np.ndarray:
    """Airy intensity ``[2 J1(x)/x]^2`` (peak 1, ``x = pi r``) at radius ``r_ld`` in lambda/D."""
    r = np.asarray(r_ld, dtype=np.float64)
    position = r / _AIRY_STEP_LD
    index = np.minimum(position.astype(np.int64), _AIRY_TABLE.size - 2)
    frac = position - index
    out = _AIRY_TABLE[index] * (1.0 - frac) + _AIRY_TABLE[index + 1] * frac
    far = r > 64.0
    if np.any(far):
        out[far] = _airy_exact(r[far])
    return out


def airy_encircled_energy(r_ld: float | np.ndarray) -> float | np.ndarray:
    """Fraction of an Airy pattern's flux inside radius ``r_ld`` (lambda/D): 1 - J0^2 - J1^2."""
    x = np.pi * np.asarray(r_ld, dtype=np.float64)
    return 1.0 - special.j0(x) ** 2 - special.j1(x) ** 2


def add_airy(image: np.ndarray, x: float, y: float, flux: float, lod_px: float, radius_px: float) -> None:
    """Add (in place) an Airy pattern of total ``flux`` centred at ``(x, y)`` px.

    The pattern is sampled at pixel centres inside a disc of ``radius_px``; its normalisation is
    that of the infinite plane, so the added sum is ``flux * EE(radius)`` (slightly less than
    ``flux``). Parts outside the image are dropped.
    """
    if flux == 0.0:
        return
    ny, nx = image.shape
    r = int(np.ceil(radius_px))
    # Only the part of the stamp that falls on the image is computed (a wide stamp around a
    # bright unocculted star can be larger than a small test frame).
    x0, x1 = max(int(np.floor(x)) - r, 0), min(int(np.floor(x)) + r + 2, nx)
    y0, y1 = max(int(np.floor(y)) - r, 0), min(int(np.floor(y)) + r + 2, ny)
    if x0 >= x1 or y0 >= y1:
        return
    dist = np.hypot(np.arange(x0, x1)[None, :] - x, np.arange(y0, y1)[:, None] - y)
    stamp = flux * np.pi / 4.0 / lod_px**2 * airy_profile(dist / lod_px)
    stamp[dist > radius_px] = 0.0
    image[y0:y1, x0:x1] += stamp


def add_airy_many(
    image: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    fluxes: np.ndarray,
    lod_px: float,
    radius_px: float,
) -> None:
    """Add many Airy patterns at once (same lambda/D): ``add_airy`` for each ``(xs, ys, fluxes)``.

    Vectorised over sources (one stamp array of shape (n, s, s) and one scatter-add), which is
    what makes rendering dozens of speckles per frame cheap.
    """
    xs, ys, fluxes = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (xs, ys, fluxes))
    if xs.size == 0:
        return
    ny, nx = image.shape
    r = int(np.ceil(radius_px))
    offsets = np.arange(-r, r + 2)
    x_px = np.floor(xs).astype(int)[:, None, None] + offsets[None, None, :]
    y_px = np.floor(ys).astype(int)[:, None, None] + offsets[None, :, None]
    dist = np.hypot(x_px - xs[:, None, None], y_px - ys[:, None, None])
    peak = fluxes[:, None, None] * np.pi / 4.0 / lod_px**2
    stamps = peak * airy_profile(dist / lod_px)
    keep = (dist <= radius_px) & (x_px >= 0) & (x_px < nx) & (y_px >= 0) & (y_px < ny)
    keep &= np.broadcast_to(fluxes[:, None, None] != 0.0, keep.shape)
    np.add.at(
        image,
        (np.broadcast_to(y_px, keep.shape)[keep], np.broadcast_to(x_px, keep.shape)[keep]),
        stamps[keep],
    )


def add_polychromatic_airy(
    image: np.ndarray,
    x: float,
    y: float,
    flux: float,
    optics: BandOptics,
    *,
    n_sub: int = 5,
    radius_ld: float = 12.0,
) -> None:
    """Add a broadband Airy PSF (mean of ``n_sub`` monochromatic ones over the band) at ``(x, y)``."""
    for wl in sub_wavelengths_nm(optics.wavelength_nm, optics.bandwidth_nm, n_sub):
        lod = optics.lambda_over_d_px(wl)
        add_airy(image, x, y, flux / n_sub, lod, radius_ld * lod)


def sky_to_detector_offset(
    separation_px: float,
    pa_deg: float,
    derot_deg: float,
    anamorphism_xy: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float]:
    """Detector offset ``(dx, dy)`` px from the star of a sky source at ``separation_px``, ``pa_deg``.

    The detector image is the north-up/east-left sky turned counter-clockwise by ``derot_deg``
    (so :func:`hcdc.science.geometry.derotate` with ``derot_deg`` undoes it), then compressed by
    the anamorphism.
    """
    # Turning the sky counter-clockwise by derot adds derot to every position angle; on a 1x1
    # frame the centre is (0, 0), so polar_to_pixel returns the offset from the star.
    dx, dy = geometry.polar_to_pixel(separation_px, pa_deg + derot_deg, (1, 1))
    return dx / anamorphism_xy[0], dy / anamorphism_xy[1]


def companion_detector_xy(
    star_xy: tuple[float, float],
    separation_px: float,
    pa_deg: float,
    derot_deg: float,
    anamorphism_xy: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float]:
    """Detector position ``(x, y)`` px of a companion, given the star position on the detector."""
    dx, dy = sky_to_detector_offset(separation_px, pa_deg, derot_deg, anamorphism_xy)
    return star_xy[0] + dx, star_xy[1] + dy


def waffle_spot_xy(star_xy: tuple[float, float], radius_px: float, orientation_deg: float) -> np.ndarray:
    """Positions ``(4, 2)`` of the waffle spots: ``star + r (cos, sin)(orientation + k 90 deg)``.

    ``orientation_deg`` is counter-clockwise from +x on the detector (vlt-sphere: IRDIS 0 deg for
    ``OCS WAFFLE ORIENT='+'``, 45 deg for ``'x'``). Spots 0<->2 and 1<->3 are opposite.
    """
    angles = np.radians(orientation_deg + 90.0 * np.arange(4))
    return np.column_stack((star_xy[0] + radius_px * np.cos(angles), star_xy[1] + radius_px * np.sin(angles)))


@dataclass(frozen=True)
class SpeckleModel:
    """Quasi-static speckles fixed on the detector, positions in lambda/D so they scale with lambda.

    ``radius_ld``/``angle_deg``: polar position of each speckle relative to the star (angle
    counter-clockwise from +x on the detector) at any wavelength, in units of that wavelength's
    lambda/D; ``fraction``: mean flux of each speckle as a fraction of the star's core flux;
    ``period_s``/``phase``/``modulation``: slow sinusoidal evolution of each speckle's flux
    (quasi-static: ``fraction * (1 + modulation * sin(2 pi t / period + phase))``).
    """

    radius_ld: np.ndarray
    angle_deg: np.ndarray
    fraction: np.ndarray
    period_s: np.ndarray
    phase: np.ndarray
    modulation: float

    def fractions_at(self, time_s: float) -> np.ndarray:
        """Flux fraction of each speckle at ``time_s`` seconds (any fixed origin)."""
        return self.fraction * (
            1.0 + self.modulation * np.sin(2.0 * np.pi * time_s / self.period_s + self.phase)
        )


def make_speckles(
    rng: np.random.Generator,
    n: int = 80,
    r_min_ld: float = 2.5,
    r_max_ld: float = 20.0,
    total_fraction: float = 2e-3,
    modulation: float = 0.1,
    period_range_s: tuple[float, float] = (1800.0, 7200.0),
) -> SpeckleModel:
    """Draw ``n`` speckles between ``r_min_ld`` and ``r_max_ld`` (lambda/D), dimmer further out.

    Radii are uniform in ``log r``; each speckle's flux is proportional to ``r^-2`` (a
    halo-like radial decrease), scaled so that all speckles together carry ``total_fraction``
    of the star's core flux. ``r_max_ld`` = 20 is SAXO's control radius (40x40 actuators).
    """
    radius = np.exp(rng.uniform(np.log(r_min_ld), np.log(r_max_ld), n))
    weight = radius**-2.0 * rng.exponential(1.0, n)
    return SpeckleModel(
        radius_ld=radius,
        angle_deg=rng.uniform(0.0, 360.0, n),
        fraction=total_fraction * weight / weight.sum(),
        period_s=rng.uniform(*period_range_s, n),
        phase=rng.uniform(0.0, 2.0 * np.pi, n),
        modulation=modulation,
    )


def add_speckles(
    image: np.ndarray,
    star_xy: tuple[float, float],
    star_flux: float,
    speckles: SpeckleModel | EvolvingSpeckles,
    optics: BandOptics,
    time_s: float,
    *,
    n_sub: int = 3,
) -> None:
    """Add the speckle pattern (in place) around ``star_xy`` at ``time_s``; positions scale with lambda.

    ``speckles`` is either the discrete :class:`SpeckleModel` or an evolving field
    (:class:`hcdc.science.simulation.speckles.EvolvingSpeckles`, the realistic default of the
    night simulator); both are sampled at ``n_sub`` wavelengths over the band.
    """
    if isinstance(speckles, EvolvingSpeckles):
        lods = [
            optics.lambda_over_d_px(wl)
            for wl in sub_wavelengths_nm(optics.wavelength_nm, optics.bandwidth_nm, n_sub)
        ]
        image += star_flux * speckle_intensity(speckles, image.shape, star_xy, np.array(lods), time_s)
        return
    fractions = speckles.fractions_at(time_s)
    angles = np.radians(speckles.angle_deg)
    for wl in sub_wavelengths_nm(optics.wavelength_nm, optics.bandwidth_nm, n_sub):
        lod = optics.lambda_over_d_px(wl)
        xs = star_xy[0] + speckles.radius_ld * lod * np.cos(angles)
        ys = star_xy[1] + speckles.radius_ld * lod * np.sin(angles)
        add_airy_many(image, xs, ys, star_flux * fractions / n_sub, lod, 2.5 * lod)


def halo_image(
    shape: tuple[int, int],
    star_xy: tuple[float, float],
    star_flux: float,
    lod_px: float,
    *,
    fraction: float = 0.05,
    control_radius_ld: float = 20.0,
    dark_hole_depth: float = 0.1,
) -> np.ndarray:
    """Smooth AO halo (ADU/s per px) around ``star_xy``.

    A Moffat profile (beta = 1.5, core 4 lambda/D) carrying ``fraction`` of the star's core flux
    outside the correction; inside SAXO's control radius the halo is depressed to
    ``dark_hole_depth`` of it (the AO "dark hole"), with a smooth transition over 2 lambda/D.
    """
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = np.hypot(xx - star_xy[0], yy - star_xy[1]) / lod_px
    core = 4.0
    beta = 1.5
    # Moffat normalised over the plane: integral = pi core^2 / (beta - 1) (in (lambda/D)^2).
    moffat = (1.0 + (r / core) ** 2) ** (-beta) * (beta - 1.0) / (np.pi * core**2)
    edge = 0.5 * (1.0 + np.tanh((r - control_radius_ld) / 1.0))
    depression = dark_hole_depth + (1.0 - dark_hole_depth) * edge
    return star_flux * fraction * moffat * depression / lod_px**2


def coronagraph_transmission(separation_px: float | np.ndarray, mask_radius_px: float) -> np.ndarray:
    """Off-axis transmission of a Lyot coronagraph mask: ``1 - exp(-(r / r_mask)^4)``.

    A smooth model of an apodized Lyot coronagraph (SPHERE ALC): ~0 at the centre, 0.63 at the
    mask radius, ~1 beyond 1.5 mask radii.
    """
    r = np.asarray(separation_px, dtype=np.float64)
    return 1.0 - np.exp(-((r / mask_radius_px) ** 4))


@dataclass
class StarScene:
    """What the star contributes to one field (all fluxes in ADU/s before ND and flat).

    ``kind``: ``'coronagraphic'`` (star behind the mask: core attenuated to ``coronagraph_leak``,
    companions through :func:`coronagraph_transmission`), ``'center'`` (coronagraphic plus the
    four waffle spots) or ``'flux'`` (star off the mask, unattenuated, usually through a neutral
    density ``nd_transmission``).

    ``center_leak_to_spot``: in ``'center'`` scenes, the flux of the central coronagraphic leak
    divided by the flux of one waffle spot (on sky from ~0.3 to ~30; None keeps
    ``coronagraph_leak``, i.e. 1.5 with the defaults). It changes only the leak of CENTER frames.
    ``leak_residual``: optional ``(n, 3)`` rows ``(radius_ld, angle_deg, fraction)`` of bright
    low-order residual speckles close to the leak (see :func:`make_leak_residual`), each
    carrying ``fraction`` of the leak's flux; added in ``'center'`` scenes only.
    """

    kind: str
    star_xy: tuple[float, float]
    star_flux: float
    optics: BandOptics
    speckles: SpeckleModel | EvolvingSpeckles
    time_s: float
    nd_transmission: float = 1.0
    coronagraph_leak: float = 3e-3
    mask_radius_px: float = 7.5
    halo_fraction: float = 0.05
    companions_xy_flux: list[tuple[float, float, float]] = field(default_factory=list)
    waffle_radius_px: float = 0.0
    waffle_orientation_deg: float = 0.0
    waffle_fraction: float = 2e-3
    waffle_spot_offsets_px: np.ndarray | None = None
    n_sub: int = 5
    center_leak_to_spot: float | None = None
    leak_residual: np.ndarray | None = None

    def leak_fraction(self) -> float:
        """Fraction of the star's flux left in the central core (coronagraphic and CENTER scenes)."""
        if self.kind == "center" and self.center_leak_to_spot is not None:
            return self.center_leak_to_spot * self.waffle_fraction
        return self.coronagraph_leak


def render_star_field(shape: tuple[int, int], scene: StarScene) -> np.ndarray:
    """Noise-free image (ADU/s, before the flat) of the star, halo, speckles, spots and companions."""
    if scene.kind not in {"coronagraphic", "center", "flux"}:
        raise ValueError(f"unknown scene kind {scene.kind!r}; use coronagraphic, center or flux")
    image = np.zeros(shape, dtype=np.float64)
    flux = scene.star_flux * scene.nd_transmission
    lod = scene.optics.lambda_over_d_px()
    coronagraphic = scene.kind in {"coronagraphic", "center"}
    core = flux * (scene.leak_fraction() if coronagraphic else 1.0)
    # The unocculted PSF needs wide wings for photometry; the residual core behind the mask not.
    add_polychromatic_airy(
        image,
        *scene.star_xy,
        core,
        scene.optics,
        n_sub=scene.n_sub,
        radius_ld=8.0 if coronagraphic else 40.0,
    )
    image += halo_image(shape, scene.star_xy, flux, lod, fraction=scene.halo_fraction)
    add_speckles(image, scene.star_xy, flux, scene.speckles, scene.optics, scene.time_s)
    if scene.kind == "center" and scene.leak_residual is not None:
        _add_leak_residual(image, scene, core)
    if scene.kind == "center":
        offsets = (
            np.zeros((4, 2))
            if scene.waffle_spot_offsets_px is None
            else np.asarray(scene.waffle_spot_offsets_px, dtype=np.float64)
        )
        # Waffle spots are made by the DM before the coronagraph: their distance scales with lambda.
        for wl in sub_wavelengths_nm(scene.optics.wavelength_nm, scene.optics.bandwidth_nm, scene.n_sub):
            lod_wl = scene.optics.lambda_over_d_px(wl)
            radius = scene.waffle_radius_px * wl / scene.optics.wavelength_nm
            spots = waffle_spot_xy(scene.star_xy, radius, scene.waffle_orientation_deg) + offsets
            spot_flux = np.full(4, flux * scene.waffle_fraction / scene.n_sub)
            add_airy_many(image, spots[:, 0], spots[:, 1], spot_flux, lod_wl, 6.0 * lod_wl)
    if scene.companions_xy_flux:
        comp = np.asarray(scene.companions_xy_flux, dtype=np.float64).reshape(-1, 3)
        transmission = np.ones(len(comp))
        if coronagraphic:
            sep = np.hypot(comp[:, 0] - scene.star_xy[0], comp[:, 1] - scene.star_xy[1])
            transmission = coronagraph_transmission(sep, scene.mask_radius_px)
        fluxes = comp[:, 2] * scene.nd_transmission * transmission
        for wl in sub_wavelengths_nm(scene.optics.wavelength_nm, scene.optics.bandwidth_nm, scene.n_sub):
            lod_wl = scene.optics.lambda_over_d_px(wl)
            add_airy_many(image, comp[:, 0], comp[:, 1], fluxes / scene.n_sub, lod_wl, 12.0 * lod_wl)
    return image


def make_leak_residual(
    rng: np.random.Generator,
    n: int = 10,
    r_range_ld: tuple[float, float] = (1.5, 3.5),
    total: float = 1.0,
) -> np.ndarray:
    """Bright residual speckles around a coronagraphic leak: ``(n, 3)`` rows ``(r_ld, angle_deg, fraction)``.

    On sky the light left behind the mask is not a clean core: low-order aberrations and
    tip-tilt jitter put a ring of bright speckles at ~1.5-3.5 lambda/D (on a real SPHERE CENTER
    frame the ring at 2-3 lambda/D peaks at ~6 times a waffle spot, the core at ~15 times).
    Fractions (of the leak's flux) are exponentially distributed and sum to ``total``.
    """
    weight = rng.exponential(1.0, n)
    return np.column_stack(
        [
            rng.uniform(r_range_ld[0], r_range_ld[1], n),
            rng.uniform(0.0, 360.0, n),
            total * weight / weight.sum(),
        ]
    )


def _add_leak_residual(image: np.ndarray, scene: StarScene, leak_flux: float) -> None:
    """Add ``scene.leak_residual`` (positions in lambda/D, so they scale with lambda) in place."""
    rows = np.asarray(scene.leak_residual, dtype=np.float64).reshape(-1, 3)
    angles = np.radians(rows[:, 1])
    for wl in sub_wavelengths_nm(scene.optics.wavelength_nm, scene.optics.bandwidth_nm, scene.n_sub):
        lod = scene.optics.lambda_over_d_px(wl)
        xs = scene.star_xy[0] + rows[:, 0] * lod * np.cos(angles)
        ys = scene.star_xy[1] + rows[:, 0] * lod * np.sin(angles)
        add_airy_many(image, xs, ys, leak_flux * rows[:, 2] / scene.n_sub, lod, 4.0 * lod)


@dataclass
class DetectorModel:
    """IRDIS detector truth for one raw frame shape ``(ny, nx)`` (both fields side by side).

    ``bias`` (ADU), ``dark_current`` (ADU/s), ``flat`` (relative pixel response, median 1 per
    field; dead pixels ~0), ``nonlinear_knee_e`` (electrons; ``inf`` for linear pixels: a pixel
    collecting ``e`` electrons reads ``e / (1 + e / knee)``), ``bad_pixels`` (uint8 bit mask:
    1 hot, 2 dead, 4 non-linear), ``gain`` (e-/ADU), ``read_noise_e`` (electrons rms per DIT).
    """

    bias: np.ndarray
    dark_current: np.ndarray
    flat: np.ndarray
    nonlinear_knee_e: np.ndarray
    bad_pixels: np.ndarray
    gain: float
    read_noise_e: float

    HOT = 1
    DEAD = 2
    NONLINEAR = 4

    @property
    def shape(self) -> tuple[int, int]:
        return self.bias.shape  # type: ignore[return-value]

    def readout(
        self,
        light_adu_s: np.ndarray,
        dit: float,
        rng: np.random.Generator | None,
        *,
        noise: bool = True,
    ) -> np.ndarray:
        """One raw DIT (float32 ADU) for incident ``light_adu_s`` (ADU/s per px, before the flat).

        Electrons = gain * DIT * (flat * light + dark current), with Poisson noise; non-linear
        pixels compress; then bias and Gaussian read noise are added. ``noise=False`` (or
        ``rng=None``) gives the expectation without noise.
        """
        if light_adu_s.shape != self.shape:
            raise ValueError(f"light image {light_adu_s.shape} does not match the detector {self.shape}")
        electrons = self.gain * dit * (self.flat * np.clip(light_adu_s, 0.0, None) + self.dark_current)
        if noise and rng is not None:
            electrons = rng.poisson(electrons).astype(np.float64)
        electrons = electrons / (1.0 + electrons / self.nonlinear_knee_e)
        adu = electrons / self.gain + self.bias
        if noise and rng is not None:
            adu += rng.normal(0.0, self.read_noise_e / self.gain, self.shape)
        return adu.astype(np.float32)


def make_detector(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    field_width: int,
    gain: float,
    read_noise_e: float = 10.0,
    bias_adu: tuple[float, float] = (20.0, 25.0),
    dark_current_adu_s: float = 0.05,
    pixel_response_rms: float = 0.02,
    field_response: tuple[float, float] = (1.0, 1.0),
    hot_fraction: float = 2e-3,
    dead_fraction: float = 1e-3,
    nonlinear_fraction: float = 1e-3,
) -> DetectorModel:
    """Draw a detector: bias per field, dark current, flat (pixel response x smooth illumination), bad pixels.

    The smooth part of the flat is a gentle gradient (+-3 %) different in each field; each field's
    flat is normalised to median 1, then scaled by ``field_response`` (relative throughput of the
    two fields). Hot pixels have dark currents of 2-200 ADU/s (log-uniform); dead pixels respond at
    0-5 %; non-linear pixels have a compression knee of 3000-20000 electrons.
    """
    ny, nx = shape
    nfields = max(nx // field_width, 1)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64) / max(ny, nx)
    bias = np.empty(shape)
    flat = rng.normal(1.0, pixel_response_rms, shape)
    for f in range(nfields):
        sl = np.s_[:, f * field_width : (f + 1) * field_width]
        gx, gy = rng.uniform(-0.03, 0.03, 2)
        flat[sl] *= 1.0 + gx * (xx[sl] - xx[sl].mean()) * 2 + gy * (yy[sl] - yy[sl].mean()) * 2
        flat[sl] /= np.median(flat[sl])
        flat[sl] *= field_response[min(f, len(field_response) - 1)]
        bias[sl] = bias_adu[min(f, len(bias_adu) - 1)]
    bias += rng.normal(0.0, 1.0, shape)  # fixed-pattern bias structure
    dark = np.clip(rng.normal(dark_current_adu_s, 0.2 * dark_current_adu_s, shape), 0.0, None)
    bad = np.zeros(shape, dtype=np.uint8)
    knee = np.full(shape, np.inf)
    npix = ny * nx
    order = rng.permutation(npix)
    n_hot, n_dead, n_nl = (int(round(f * npix)) for f in (hot_fraction, dead_fraction, nonlinear_fraction))
    hot = np.unravel_index(order[:n_hot], shape)
    dead = np.unravel_index(order[n_hot : n_hot + n_dead], shape)
    nonlin = np.unravel_index(order[n_hot + n_dead : n_hot + n_dead + n_nl], shape)
    dark[hot] = np.exp(rng.uniform(np.log(2.0), np.log(200.0), n_hot))
    bad[hot] |= DetectorModel.HOT
    flat[dead] = rng.uniform(0.0, 0.05, n_dead)
    bad[dead] |= DetectorModel.DEAD
    knee[nonlin] = rng.uniform(3000.0, 20000.0, n_nl)
    bad[nonlin] |= DetectorModel.NONLINEAR
    return DetectorModel(
        bias=bias,
        dark_current=dark,
        flat=flat,
        nonlinear_knee_e=knee,
        bad_pixels=bad,
        gain=gain,
        read_noise_e=read_noise_e,
    )


def illumination_mask(
    shape: tuple[int, int],
    dead_rows: tuple[tuple[int, int], ...],
    dead_columns: tuple[tuple[int, int], ...],
) -> np.ndarray:
    """Float mask, 0 on the vignetted dead zones (``[start, stop)`` rows/columns), 1 elsewhere."""
    mask = np.ones(shape)
    for start, stop in dead_rows:
        mask[start:stop, :] = 0.0
    for start, stop in dead_columns:
        mask[:, start:stop] = 0.0
    return mask
