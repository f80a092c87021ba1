"""SPHERE/IFS detector geometry: hexagonal lenslet grid, micro-spectra positions, dispersion.

The IFS is a lenslet-based integral-field spectrograph (BIGRE lenslet array): each lenslet of a
hexagonal array samples one spatial element of the coronagraphic focal plane and a prism
disperses its light into a short *micro-spectrum* on the 2048 x 2048 Hawaii-2RG detector. A raw
frame is ~19 000 such spectra; a reduction finds them (SPECPOS), calibrates their wavelengths
(WAVE,LAMP lasers), extracts them and resamples the lenslets onto a regular spatial grid
(39 wavelengths x 290 x 290 at 7.46 mas/px).

Conventions (used by the simulator and by the extraction):

* **Detector**: 0-based pixel indices, ``x`` = column (NAXIS1), ``y`` = row (NAXIS2), pixel
  centres at integers. A micro-spectrum runs along ``+y`` (detector columns are the spectral
  direction, as in vlt-sphere, which interpolates bad pixels "along the spectral (column)
  direction"): shorter wavelengths at smaller ``y``.
* **Lenslet lattice**: lenslet ``(i, j)`` sits at lattice coordinates
  ``u = i + (j mod 2) / 2``, ``v = j * sqrt(3) / 2`` (in lenslet pitches): rows of lenslets along
  ``u``, every other row shifted by half a pitch -- the construction of charis-dep's SPHERE
  class (``lenslet_ix[::2] += 0.5; lenslet_iy *= sqrt(3)/2``). The sky plane seen by the
  lenslets (the *lenslet frame*) has axes ``(u, v)`` scaled by the lenslet pitch on the sky.
* **Lenslet frame -> detector**: the trace centre of lenslet ``(u, v)`` is
  ``origin + pitch_det * R(rotation) (u, v)``, ``R`` the counter-clockwise rotation. Rotating the
  hexagonal grid with respect to the dispersion direction is what lets ~40-pixel-long spectra
  sit between their neighbours without overlapping.

Numbers and where they come from (``shared/reference/sphere.md`` short names):

========================================  ================  =====================================
quantity                                  value             source / status
========================================  ================  =====================================
detector                                  2048 x 2048 px    real headers (NAXIS1/2, DET CHIP1 NX/NY)
pixel pitch                               18 um             real header DET CHIP1 PXSPACE
gain                                      1.80 e-/ADU       real header DET CHIP1 GAIN
lenslet grid                              hexagonal         charis-dep SPHERE class
spectral modes                            YJ, YJH           real headers (INS2 COMB IFS OBS_YJ/OBS_H)
calibration lasers                        987.72, 1123.71,  vlt-sphere IFS.ini; ESO ifs_wave_qc1
                                          1309.37, 1545.07  (YJ uses the first 3, YJH all 4)
resolving power                           YJ 55, YJH 35     charis-dep SPHERE class
output channels                           39, linear in     vlt-sphere (nwave = 39, linear
                                          wavelength        between DRS IFS MIN/MAX LAMBDA)
output range                              YJ 960-1350 nm,   charis-dep SPHERE class (current
                                          YJH 960-1650 nm   commit; sphere.md's older commit has
                                                            940-1370 / 920-1700 as extraction
                                                            ranges, kept in metadata.py)
cube sampling                             7.46 mas/px       real header PIXSCAL
**lenslet pitch on the detector**         16.0 px           ASSUMPTION (see below)
**grid rotation**                         10.9 deg          ASSUMPTION (see below)
**spectral length (min->max channel)**    38 px, both modes ASSUMPTION (see below)
**spectral PSF**                          sigma 0.85 px     ASSUMPTION (FWHM 2 px)
**dispersion curvature**                  0.15              ASSUMPTION (prism: bluer = more px/nm)
**lenslet pitch on the sky**              12.25 mas         ASSUMPTION (see below)
========================================  ================  =====================================

The assumed numbers are not in the reference; they were chosen to be consistent with the facts
that are:

* *~19 000 spectra on 2048^2 px* (issue 16) means a hexagonal cell of ~220 px^2, i.e. a pitch of
  ~16 px on the detector (cell area = pitch^2 sqrt(3)/2 = 221.7 px^2 for 16 px).
* For a 16-px pitch, a rotation of 10.9 deg maximises the smallest horizontal distance between
  two spectra whose traces overlap in ``y`` (5.2 px for 38-px spectra; a scan over 5-20 deg is in
  docs/ifs.md). 10.9 deg is also the rotation quoted for the real instrument in the IFS design
  papers (Claudi et al.; not in the reference, hence "assumption").
* A 38-px spectrum with a 2-px FWHM spectral PSF gives R = lambda / (2 px * dlambda/dpx) ~ 56 in
  YJ (960-1350 nm) and ~36 in YJH (960-1650 nm): the resolving powers charis-dep uses (55, 35).
* A 12.25 mas lenslet pitch on the sky (~ lambda/2D at 1 um, Nyquist sampling at the blue end)
  is the IFS spatial sampling quoted in the design papers; resampled to the 7.46 mas/px cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcdc.science.calibration.ifs_crosstalk import CrosstalkModel

__all__ = [
    "IFS_RAW_SHAPE",
    "IFS_REFERENCE_PIXELS",
    "LENSLET_PITCH_DET_PX",
    "LENSLET_ROTATION_DEG",
    "LENSLET_PITCH_SKY_MAS",
    "SPECTRUM_LENGTH_PX",
    "SPECTRAL_PSF_SIGMA_PX",
    "DISPERSION_CURVATURE",
    "N_WAVELENGTHS",
    "LASER_LINES_NM",
    "CROSSTALK",
    "IfsModeOptics",
    "IFS_MODES",
    "ifs_mode_optics",
    "output_wavelengths_nm",
    "LensletGrid",
    "lenslet_grid",
]

#: Raw IFS frame (rows, columns): the real headers' NAXIS2 x NAXIS1.
IFS_RAW_SHAPE = (2048, 2048)
#: Hawaii-2RG reference pixels: a 4-pixel border that sees no light (assumption: the standard
#: H2RG layout; the real headers do not say).
IFS_REFERENCE_PIXELS = 4
#: Distance between neighbouring lenslets' spectra on the detector (px). ASSUMPTION, module doc.
LENSLET_PITCH_DET_PX = 16.0
#: Rotation of the hexagonal lenslet grid with respect to the detector columns (deg,
#: counter-clockwise). ASSUMPTION, module doc.
LENSLET_ROTATION_DEG = 10.9
#: Lenslet pitch on the sky (mas). ASSUMPTION, module doc.
LENSLET_PITCH_SKY_MAS = 12.25
#: Length of a micro-spectrum from the first to the last output wavelength (px). ASSUMPTION.
SPECTRUM_LENGTH_PX = 38.0
#: Gaussian sigma of a monochromatic lenslet image on the detector, both axes (px). ASSUMPTION.
SPECTRAL_PSF_SIGMA_PX = 0.85
#: Curvature ``c`` of the dispersion law ``f(s) = s + c s (1 - s)`` (see :meth:`IfsModeOptics.
#: trace_offset_px`): a prism disperses blue light more, so pixels per nm fall from (1 + c) to
#: (1 - c) times the mean across the band. ASSUMPTION.
DISPERSION_CURVATURE = 0.15
#: Output channels of an IFS cube (vlt-sphere ``nwave = 39``).
N_WAVELENGTHS = 39
#: Wavelength-calibration lasers (nm), vlt-sphere IFS.ini / ESO ifs_wave_qc1 (0.9877, 1.1237,
#: 1.3094, 1.5451 um); header lamps CBL3 980 nm, CBL6 1080 nm, CBL1 1310 nm, CBL2 1550 nm.
LASER_LINES_NM = (987.72, 1123.71, 1309.37, 1545.07)
#: Spectral cross-talk (Mesa et al. 2015, A&A 576, A121: a small- and a large-scale component;
#: :mod:`hcdc.science.calibration.ifs_crosstalk`): the small-scale kernel of D. Mesa's correction
#: as vlt-sphere applies it (``1 / (1 + (r/b)^3)``, b = 0.727986/1.8 px, 41 x 41, inner 3 x 3
#: zeroed: 22.05 % of the light in the wings) and a diffuse Gaussian halo of sigma 40 px carrying
#: 2 % of the light. The halo's numbers are an ASSUMPTION (the reference gives none); the
#: simulator draws with this model and ``level1-ifs`` 0.3 corrects with it (docs/ifs.md).
CROSSTALK = CrosstalkModel(small_amplitude=1.0, large_fraction=0.02, large_sigma_px=40.0)


@dataclass(frozen=True)
class IfsModeOptics:
    """One IFS spectral mode: header values, output wavelength range and dispersion law.

    ``wave_min_nm`` / ``wave_max_nm`` are the first and last of the 39 output channels; the
    trace offset of wavelength ``w`` from the trace centre is
    ``L * (f(s) - 1/2)`` with ``s = (w - wave_min) / (wave_max - wave_min)``,
    ``f(s) = s + c s (1 - s)``, ``L`` = :data:`SPECTRUM_LENGTH_PX`, ``c`` =
    :data:`DISPERSION_CURVATURE`.
    """

    name: str  # YJ or YJH
    hcdc_mode: str  # FileMetadata.mode: IFS-YJ / IFS-YJH
    comb: str  # INS2 COMB IFS
    ins2_mode: str  # INS2 MODE
    ins4_mode: str  # INS4 MODE (IRDIFS modes: IFS with IRDIS)
    irdis_mode: str  # INS1 MODE of the IRDIS half of IRDIFS
    prism_name: str  # INS2 OPTI2 NAME
    prism_id: str  # INS2 OPTI2 ID
    dichroic: str  # INS4 OPTI13 NAME
    irdis_filter: str  # INS COMB IFLT of the IRDIS half (real headers: BB_H with YJ)
    wave_min_nm: float
    wave_max_nm: float
    resolving_power: float  # charis-dep
    n_lasers: int  # lasers used by the wavelength calibration (YJ 3, YJH 4)

    @property
    def lasers_nm(self) -> tuple[float, ...]:
        """Laser lines (nm) seen by this mode's wavelength calibration."""
        return LASER_LINES_NM[: self.n_lasers]

    def trace_offset_px(self, wavelength_nm: np.ndarray | float) -> np.ndarray:
        """Offset along ``+y`` (px) of ``wavelength_nm`` from the trace centre (defined for any
        wavelength; outside the output range it extrapolates the same quadratic law)."""
        s = (np.asarray(wavelength_nm, dtype=np.float64) - self.wave_min_nm) / (
            self.wave_max_nm - self.wave_min_nm
        )
        return SPECTRUM_LENGTH_PX * (s + DISPERSION_CURVATURE * s * (1.0 - s) - 0.5)

    def wavelength_at_offset(self, offset_px: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`trace_offset_px` (nm): the root of the quadratic on the band's branch."""
        f = np.asarray(offset_px, dtype=np.float64) / SPECTRUM_LENGTH_PX + 0.5
        c = DISPERSION_CURVATURE
        # c s^2 - (1 + c) s + f = 0, the root that is continuous through s = 0 and s = 1
        s = ((1.0 + c) - np.sqrt((1.0 + c) ** 2 - 4.0 * c * f)) / (2.0 * c)
        return self.wave_min_nm + s * (self.wave_max_nm - self.wave_min_nm)

    def dispersion_nm_per_px(self, wavelength_nm: np.ndarray | float) -> np.ndarray:
        """Local dispersion d(lambda)/dy (nm/px) at ``wavelength_nm``."""
        s = (np.asarray(wavelength_nm, dtype=np.float64) - self.wave_min_nm) / (
            self.wave_max_nm - self.wave_min_nm
        )
        dfds = 1.0 + DISPERSION_CURVATURE * (1.0 - 2.0 * s)
        return (self.wave_max_nm - self.wave_min_nm) / (SPECTRUM_LENGTH_PX * dfds)


IFS_MODES: dict[str, IfsModeOptics] = {
    "YJ": IfsModeOptics(
        name="YJ",
        hcdc_mode="IFS-YJ",
        comb="OBS_YJ",
        ins2_mode="NIROBS",
        ins4_mode="IRDIFS",
        irdis_mode="NIROBS",
        prism_name="PRI_YJ",
        prism_id="PRIS_YJ",
        dichroic="DIC_H",
        irdis_filter="BB_H",
        wave_min_nm=960.0,
        wave_max_nm=1350.0,
        resolving_power=55.0,
        n_lasers=3,
    ),
    "YJH": IfsModeOptics(
        name="YJH",
        hcdc_mode="IFS-YJH",
        comb="OBS_H",
        ins2_mode="IFS-H",
        ins4_mode="IRDIFS_EXT",
        irdis_mode="EXT",
        prism_name="PRI_YJH",
        prism_id="PRIS_YJH",
        dichroic="DIC_K",
        irdis_filter="DB_K12",
        wave_min_nm=960.0,
        wave_max_nm=1650.0,
        resolving_power=35.0,
        n_lasers=4,
    ),
}


def ifs_mode_optics(mode: str) -> IfsModeOptics:
    """Optics of ``mode`` (``YJ``/``YJH``, also ``IFS-YJ``/``IFS-YJH``/``OBS_YJ``/``OBS_H``)."""
    key = mode.strip().upper()
    for optics in IFS_MODES.values():
        if key in {optics.name, optics.hcdc_mode.upper(), optics.comb}:
            return optics
    raise ValueError(f"unknown IFS mode {mode!r}; use YJ or YJH")


def output_wavelengths_nm(mode: str) -> np.ndarray:
    """The 39 output channels (nm) of ``mode``: linear between the first and last (vlt-sphere)."""
    optics = ifs_mode_optics(mode)
    return np.linspace(optics.wave_min_nm, optics.wave_max_nm, N_WAVELENGTHS)


@dataclass(frozen=True)
class LensletGrid:
    """The lenslets whose micro-spectra fall on a detector of ``shape``.

    ``ij`` (n, 2) integer lattice indices; ``uv`` (n, 2) lattice coordinates in pitches (module
    doc); ``trace_xy`` (n, 2) detector position (px) of each trace centre (the middle of the
    output band, offset 0); ``origin_xy`` the detector position of lenslet (0, 0).
    """

    shape: tuple[int, int]
    origin_xy: tuple[float, float]
    ij: np.ndarray
    uv: np.ndarray
    trace_xy: np.ndarray

    def __len__(self) -> int:
        return int(self.ij.shape[0])

    @property
    def sky_xy_mas(self) -> np.ndarray:
        """Lenslet centres in the lenslet frame (mas from lenslet (0, 0)), (n, 2)."""
        return self.uv * LENSLET_PITCH_SKY_MAS


def lattice_to_detector(uv: np.ndarray, origin_xy: tuple[float, float]) -> np.ndarray:
    """Detector trace centres (n, 2) px of lattice coordinates ``uv`` (n, 2) (module doc)."""
    t = math.radians(LENSLET_ROTATION_DEG)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return np.asarray(origin_xy) + LENSLET_PITCH_DET_PX * np.asarray(uv, dtype=np.float64) @ rot.T


def lenslet_grid(
    shape: tuple[int, int] = IFS_RAW_SHAPE,
    origin_xy: tuple[float, float] | None = None,
    margin_px: float = 3.0,
) -> LensletGrid:
    """All lenslets whose whole spectrum lies on the light-sensitive part of the detector.

    A spectrum covers ``trace_y +- (L/2 + margin)`` and ``trace_x +- margin`` (``margin_px``
    about 3.5 sigma of the spectral PSF); the outer :data:`IFS_REFERENCE_PIXELS` see no light.
    ``origin_xy`` defaults to the detector centre. The full detector holds ~18 300 spectra.
    """
    ny, nx = shape
    if origin_xy is None:
        origin_xy = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    half = int(math.ceil(max(nx, ny) / LENSLET_PITCH_DET_PX)) + 2
    j, i = np.mgrid[-half : half + 1, -half : half + 1]
    i, j = i.ravel(), j.ravel()
    uv = np.column_stack((i + 0.5 * (j % 2), j * math.sqrt(3.0) / 2.0))
    xy = lattice_to_detector(uv, origin_xy)
    lo = IFS_REFERENCE_PIXELS + margin_px
    half_len = SPECTRUM_LENGTH_PX / 2.0 + margin_px
    keep = (
        (xy[:, 0] >= lo)
        & (xy[:, 0] <= nx - 1 - lo)
        & (xy[:, 1] - half_len >= IFS_REFERENCE_PIXELS)
        & (xy[:, 1] + half_len <= ny - 1 - IFS_REFERENCE_PIXELS)
    )
    return LensletGrid(
        shape=(ny, nx),
        origin_xy=(float(origin_xy[0]), float(origin_xy[1])),
        ij=np.column_stack((i[keep], j[keep])).astype(np.int32),
        uv=uv[keep],
        trace_xy=xy[keep],
    )
