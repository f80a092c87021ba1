"""A calibrated IRDIS-like coronagraphic ADI sequence rendered with the night simulator's frame model.

The night simulator (:mod:`hcdc.instruments.sphere.irdis.simulate`) writes raw files through the whole
instrument; to compare its speckles with a real cube one wants the same frame model
(:func:`hcdc.science.simulation.irdis.render_star_field`: coronagraphic leak, AO halo, speckles)
for an arbitrary sequence of times and angles, already calibrated (bias, dark, flat and
background removed; photon and read noise kept), star on the frame centre. That is
:func:`simulate_coronagraphic_sequence`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.photometry import aperture_sums, normalize_psf
from hcdc.science.simulation import irdis
from hcdc.science.simulation.adi import Companion, SimulatedADI
from hcdc.science.simulation.speckles import EvolvingSpeckles

__all__ = ["AIRY_FWHM_LD", "simulate_coronagraphic_sequence"]

#: FWHM of an Airy pattern in lambda/D.
AIRY_FWHM_LD = 1.029


def simulate_coronagraphic_sequence(
    *,
    optics: irdis.BandOptics,
    times_s: np.ndarray,
    derot_deg: np.ndarray,
    speckles: irdis.SpeckleModel | EvolvingSpeckles,
    star_flux_adu_s: float,
    dit_s: float,
    size: int = 101,
    background_adu_s: float = 0.0,
    gain: float = 1.75,
    read_noise_e: float = 10.0,
    coronagraph_leak: float = 3e-3,
    mask_radius_px: float = 7.5,
    halo_fraction: float = 0.05,
    companions: Sequence[tuple[float, float, float]] = (),
    jitter_px: float = 0.0,
    seed: int = 0,
) -> SimulatedADI:
    """Calibrated coronagraphic frames (ADU per DIT) of a pupil-tracking sequence, star on the centre.

    ``times_s``/``derot_deg``: mid-exposure time (s, any origin: it drives the speckle evolution)
    and derotation angle of each frame (:func:`hcdc.science.geometry.derotate` convention).
    ``star_flux_adu_s``: star core flux (ADU/s). Noise: Poisson on the light plus background (in
    electrons, ``gain`` e-/ADU) and Gaussian read noise; the mean background is then removed.
    ``companions``: ``(separation_px, pa_deg, contrast)``. ``jitter_px``: rms (px, per axis) of
    the star's offset from the frame centre in each frame (residual centring error). Returns a
    :class:`hcdc.science.simulation.adi.SimulatedADI` whose ``psf`` is the off-axis polychromatic
    PSF with unit 1-FWHM-aperture flux, ``fwhm`` = 1.029 lambda/D, ``star_flux`` the star's
    1-FWHM-aperture flux per DIT (so contrasts are aperture-flux ratios, as in VIP), and
    ``noise_only`` the same frames without companions.
    """
    times = np.asarray(times_s, dtype=np.float64).ravel()
    derot = np.asarray(derot_deg, dtype=np.float64).ravel()
    if times.size != derot.size or times.size < 2:
        raise ValueError(f"need >= 2 frames with one time and one angle each; got {times.size}, {derot.size}")
    if dit_s <= 0 or star_flux_adu_s <= 0:
        raise ValueError(f"dit_s and star_flux_adu_s must be positive; got {dit_s}, {star_flux_adu_s}")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    cy, cx = geometry.frame_center(shape)
    lod = optics.lambda_over_d_px()
    fwhm = AIRY_FWHM_LD * lod
    # Off-axis PSF: the same polychromatic Airy the companions get, on a stamp.
    half = int(np.ceil(3.0 * fwhm))
    stamp = np.zeros((2 * half + 1, 2 * half + 1))
    irdis.add_polychromatic_airy(stamp, half, half, 1.0, optics)
    core_aperture = float(aperture_sums(stamp, np.array([half]), np.array([half]), fwhm / 2.0)[0])
    psf = normalize_psf(stamp, fwhm)
    star_aperture = star_flux_adu_s * dit_s * core_aperture
    frames = np.empty((times.size, size, size), dtype=np.float32)
    clean = np.empty_like(frames)
    offsets = rng.normal(0.0, jitter_px, (times.size, 2)) if jitter_px > 0 else np.zeros((times.size, 2))
    for k in range(times.size):
        star = (float(cx + offsets[k, 0]), float(cy + offsets[k, 1]))
        comp = []
        for sep, pa, contrast in companions:
            x, y = irdis.companion_detector_xy(star, sep, pa, float(derot[k]))
            comp.append((x, y, contrast * star_flux_adu_s))
        scene = irdis.StarScene(
            kind="coronagraphic",
            star_xy=star,
            star_flux=star_flux_adu_s,
            optics=optics,
            speckles=speckles,
            time_s=float(times[k]),
            coronagraph_leak=coronagraph_leak,
            mask_radius_px=mask_radius_px,
            halo_fraction=halo_fraction,
            companions_xy_flux=comp,
        )
        light = irdis.render_star_field(shape, scene)
        without = light
        if comp:
            scene.companions_xy_flux = []
            without = irdis.render_star_field(shape, scene)
        electrons = gain * dit_s * (np.clip(light, 0.0, None) + background_adu_s)
        noise_e = rng.poisson(electrons) - electrons + rng.normal(0.0, read_noise_e, shape)
        frames[k] = light * dit_s + noise_e / gain
        clean[k] = without * dit_s + noise_e / gain
    truth = [
        Companion(
            float(s),
            float(p) % 360.0,
            float(c),
            float(c * star_aperture),
            *geometry.polar_to_pixel(s, p, shape),
        )
        for s, p, c in companions
    ]
    return SimulatedADI(
        cube=frames,
        angles=derot,
        psf=psf,
        fwhm=float(fwhm),
        star_flux=float(star_aperture),
        companions=truth,
        noise_only=clean,
    )
