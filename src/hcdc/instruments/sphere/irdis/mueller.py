"""Mueller-matrix model of IRDIS dual-polarisation imaging (DPI): telescope, HWP, derotator, IRDIS.

The model is the one published by van Holstein et al. (2020, A&A 633, A64, "Polarimetric imaging
mode of VLT/SPHERE/IRDIS II. Characterization and correction of instrumental polarization
effects", Sect. 4-5), whose fitted parameters IRDAP 1.3.5 uses; this is an independent
implementation of the published equations (no IRDAP code). The light path, as a product of 4x4
Mueller matrices acting on the Stokes vector ``(I, Q, U, V)`` incident on the telescope::

    M_beam = M_pol(+-d_CI) . T(-(th_der + dl_der)) M_der T(th_der + dl_der)
                           . T(-(th_hwp + dl_hwp)) M_hwp T(th_hwp + dl_hwp)
                           . M_M4 . T(a) . M_UT . T(p)

* ``T(x)``: rotation of the reference frame by ``x`` (deg), :func:`rotation_matrix`;
* ``p``: parallactic angle (deg), ``a``: altitude (deg);
* ``M_UT`` (telescope: M1, M2 and the Nasmyth fold M3, whose plane of incidence turns with the
  altitude) and ``M_M4`` (the first mirror of SPHERE, fixed on the Nasmyth platform): mirrors with
  diattenuation ``epsilon`` and retardance ``Delta`` (:func:`diattenuating_retarder`); M1/M3 were
  recoated on 2017-04-16, after which their diattenuation is smaller;
* ``M_hwp``: the half-wave plate (HWP2) **upstream of the derotator**, at ``th_hwp`` =
  ``INS4 DROT3 BEGIN/END`` - 152.15 deg, with an offset ``dl_hwp``;
* ``M_der``: the derotator (K-mirror) at ``th_der`` with offset ``dl_der``;
* ``M_pol``: the common path and IRDIS, reduced to the two polarisers of the ordinary (left,
  ``+d_CI``) and extraordinary (right, ``-d_CI``) beams (:func:`polariser_matrix`).

Only the first row of ``M_beam`` matters (the detector measures intensity): a measured beam is
``row . S_in``. The first column of a double difference (``(row_o - row_e)/2`` of the ``+`` frame
minus that of the ``-`` frame, halved) is the **instrumental polarisation** (fraction of I), the
Q/U columns the **polarimetric efficiency and cross-talk** (rotation of the angle of
polarisation), all varying with ``p``, ``a``, ``th_hwp`` and ``th_der``.

Angles (:func:`derotator_angle`): ``th_der`` = mean of ``INS4 DROT2 BEGIN/END`` in field
tracking, that plus ``0.5 x 135.99`` (half the pupil offset) in pupil tracking (van Holstein et al.
2020; IRDAP). In pupil tracking the real headers of shared/data/sphere_headers follow
``INS4 DROT2 BEGIN = TEL ALT / 2 + 180`` (a K-mirror turns the image by twice its angle): to
0.01 deg on the OBJECT,CENTER and OBJECT,FLUX files, 0.5-0.7 deg lower on the OBJECT files (not
understood). Then the image derotation angle satisfies ``derot = p - a + 2 th_der + TN``
(mod 360; :func:`image_derotation_angle`), ``TN = -1.75`` deg; the simulator uses this relation
in both tracking modes (:func:`drot2_keyword`).

**Stokes frame and image sense**: the incident Stokes vector is in the sky frame, IAU sign
(north reference, angles east of north; hcdc's convention). The model's ``T(p)`` with ``p`` the
parallactic angle (the position angle of the zenith) is consistent with a detector that shows the
sky turned **clockwise** by the derotation angle (``PA_det = PA_sky - derot``, north up after a
counter-clockwise turn by ``derot``): the sense in which IRDAP (``scipy.ndimage.rotate(frame,
-derot)``) and VIP derotate SPHERE frames, and the physical one (in pupil tracking the zenith,
at PA ``p``, stays fixed on the detector). With it, ideal mirrors and no HWP let the polarisation
turn with the image, as they must (tested). hcdc's IRDIS imaging chain
(:func:`hcdc.science.geometry.derotate` with ``+DEROT``) turns the other way; the DPI simulator
(``instrument='mueller'``) and the ``irdis-dpi`` 1.1 reduction use IRDAP's sense.

Not verified without real DPI data (none in shared/data): the parameter values (taken as
published), the image sense beyond the argument above and the IRDAP comparison
(docs/polarimetry.md), the ``DROT2`` relation in field tracking.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "HALF_PUPIL_OFFSET_DEG",
    "RECOATING_DATE",
    "ModelParameters",
    "beam_rows",
    "derotator_angle",
    "diattenuating_retarder",
    "double_difference_rows",
    "drot2_keyword",
    "image_derotation_angle",
    "model_parameters",
    "polariser_matrix",
    "rotation_matrix",
    "system_matrix",
]

#: Half the IRDIS pupil offset (135.99 deg, vlt-sphere/IRDAP), added to ``INS4 DROT2`` in pupil
#: tracking to get the derotator angle of the model.
HALF_PUPIL_OFFSET_DEG = 0.5 * 135.99
#: True north correction (deg), as in the image derotation (vlt-sphere, IRDAP).
TRUE_NORTH_DEG = -1.75
#: Recoating of M1 and M3 (van Holstein et al. 2020): the telescope diattenuation changes.
RECOATING_DATE = dt.date(2017, 4, 16)

Tracking = Literal["PUPIL", "FIELD"]


def rotation_matrix(angle_deg: float | np.ndarray) -> np.ndarray:
    """Mueller matrix ``T(x)`` of a rotation of the reference frame by ``x`` deg: shape ``(..., 4, 4)``.

    ``T(x) (1, cos 2c, sin 2c, 0) = (1, cos 2(c - x), sin 2(c - x), 0)``: an angle ``c`` of
    polarisation becomes ``c - x`` in the rotated frame.
    """
    two = np.radians(2.0 * np.asarray(angle_deg, dtype=float))
    c, s = np.cos(two), np.sin(two)
    m = np.zeros(np.shape(two) + (4, 4))
    m[..., 0, 0] = m[..., 3, 3] = 1.0
    m[..., 1, 1] = m[..., 2, 2] = c
    m[..., 1, 2] = s
    m[..., 2, 1] = -s
    return m


def diattenuating_retarder(epsilon: float, retardance_deg: float) -> np.ndarray:
    """Mueller matrix of a linear diattenuator (``-1 <= epsilon <= 1``) and retarder (deg) with
    its axes along the frame: a mirror (ideal: ``epsilon = 0``, ``Delta = 180``), a wave plate or
    the derotator. Normalised to unit transmission of unpolarised light."""
    if not -1.0 <= epsilon <= 1.0:
        raise ValueError(f"diattenuation must be in [-1, 1], got {epsilon}")
    d = np.radians(retardance_deg)
    k = np.sqrt(1.0 - epsilon**2)
    return np.array(
        [
            [1.0, epsilon, 0.0, 0.0],
            [epsilon, 1.0, 0.0, 0.0],
            [0.0, 0.0, k * np.cos(d), k * np.sin(d)],
            [0.0, 0.0, -k * np.sin(d), k * np.cos(d)],
        ]
    )


def polariser_matrix(d: float) -> np.ndarray:
    """Mueller matrix of a (partial) polariser of diattenuation ``d`` along the frame's Q axis
    (``d = 1``: ideal, passes +Q; ``d = -1``: passes -Q), transmission 1/2 of unpolarised light."""
    if not -1.0 <= d <= 1.0:
        raise ValueError(f"polariser diattenuation must be in [-1, 1], got {d}")
    k = np.sqrt(1.0 - d**2)
    return 0.5 * np.array([[1.0, d, 0.0, 0.0], [d, 1.0, 0.0, 0.0], [0.0, 0.0, k, 0.0], [0.0, 0.0, 0.0, k]])


@dataclass(frozen=True)
class ModelParameters:
    """Parameters of the model for one filter and date (diattenuations dimensionless, retardances
    and offsets in deg). ``ideal()`` gives perfect optics (for tests)."""

    epsilon_ut: float
    delta_ut: float
    epsilon_m4: float
    delta_m4: float
    epsilon_hwp: float
    delta_hwp: float
    offset_hwp: float
    epsilon_der: float
    delta_der: float
    offset_der: float
    d_ci: float
    filter_model: str = ""

    @classmethod
    def ideal(cls) -> ModelParameters:
        return cls(0.0, 180.0, 0.0, 180.0, 0.0, 180.0, 0.0, 0.0, 180.0, 0.0, 1.0, "ideal")


# van Holstein et al. (2020, A&A 633, A64), fitted values as used by IRDAP 1.3.5, per broad-band
# filter: (Delta_UT = Delta_M4, epsilon_hwp, Delta_hwp, epsilon_der, Delta_der, d_CI,
# (epsilon_UT, epsilon_M4) before the 2017-04-16 recoating, (epsilon_UT, epsilon_M4) after).
_Row = tuple[float, float, float, float, float, float, tuple[float, float], tuple[float, float]]
_PUBLISHED: dict[str, _Row] = {
    "FILT_BBF_Y": (171.891576898, -0.000214922863, 184.244890407, -0.000942393003, 126.119575380,
                   0.980169510962, (0.0236074139, 0.0182117359), (0.0174539468, 0.0181947697)),
    "FILT_BBF_J": (173.414169049, -0.000432785819, 177.520273784, -0.008303978181, 156.058433341,
                   0.989479634328, (0.0166857018, 0.0128444786), (0.0121351355, 0.0130465135)),
    "FILT_BBF_H": (174.998748608, -0.000296578031, 170.672149677, -0.002260131403, 99.323136521,
                   0.995531396885, (0.0129300822, 0.0098452292), (0.0090322050, 0.0092209857)),
    "FILT_BBF_Ks": (176.302288996, -0.000414568661, 177.618743938, 0.003551756342, 84.134398920,
                    0.984190877387, (0.0105750417, 0.0077664306), (0.0074593218, 0.0080782857)),
}  # fmt: skip
#: HWP and derotator angle offsets (deg), all filters (van Holstein et al. 2020).
_OFFSET_HWP, _OFFSET_DER = -0.613158589269, 0.500072483779
#: Narrow-band filters use the parameters of the broad band they lie in (as IRDAP does).
_NARROW_TO_BROAD = {
    "FILT_NBF_HeI": "FILT_BBF_Y",
    "FILT_NBF_ContJ": "FILT_BBF_J", "FILT_NBF_PaB": "FILT_BBF_J",
    "FILT_NBF_ContH": "FILT_BBF_H", "FILT_NBF_FeII": "FILT_BBF_H",
    "FILT_NBF_ContK1": "FILT_BBF_Ks", "FILT_NBF_H2": "FILT_BBF_Ks", "FILT_NBF_BrG": "FILT_BBF_Ks",
    "FILT_NBF_CntK2": "FILT_BBF_Ks", "FILT_NBF_CO": "FILT_BBF_Ks",
}  # fmt: skip


def model_parameters(filter_id: str, date: dt.date | str) -> ModelParameters:
    """Published parameters for ``INS1 FILT ID`` (``FILT_BBF_Y/J/H/Ks`` or a narrow band inside
    one) on ``date`` (the telescope diattenuation changed with the 2017-04-16 recoating).
    Raises ``ValueError`` for a filter the model does not cover."""
    fid = str(filter_id).strip()
    broad = _NARROW_TO_BROAD.get(fid, fid)
    if broad not in _PUBLISHED:
        raise ValueError(
            f"no polarimetric model for filter {fid!r} (van Holstein et al. 2020 cover "
            f"{', '.join(_PUBLISHED)} and the narrow bands inside them)"
        )
    if isinstance(date, str):
        date = dt.date.fromisoformat(date[:10])
    delta_ut, eps_hwp, delta_hwp, eps_der, delta_der, d_ci, before, after = _PUBLISHED[broad]
    eps_ut, eps_m4 = before if date < RECOATING_DATE else after
    return ModelParameters(
        eps_ut,
        delta_ut,
        eps_m4,
        delta_ut,
        eps_hwp,
        delta_hwp,
        _OFFSET_HWP,
        eps_der,
        delta_der,
        _OFFSET_DER,
        d_ci,
        broad,
    )


def _rotated(element: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """``T(-x) M T(x)``: element ``M`` turned by ``x`` deg."""
    return rotation_matrix(-angle_deg) @ element @ rotation_matrix(angle_deg)


def system_matrix(
    beam: Literal["ordinary", "extraordinary"],
    parang_deg: float | np.ndarray,
    altitude_deg: float | np.ndarray,
    hwp_deg: float | np.ndarray,
    derotator_deg: float | np.ndarray,
    params: ModelParameters,
) -> np.ndarray:
    """Mueller matrix ``(..., 4, 4)`` from the Stokes vector incident on the telescope (sky frame,
    IAU) to the beam on the detector (ordinary = left, extraordinary = right).
    The angles broadcast together."""
    if beam not in ("ordinary", "extraordinary"):
        raise ValueError(f"beam must be 'ordinary' or 'extraordinary', got {beam!r}")
    p, a, h, d = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (parang_deg, altitude_deg, hwp_deg, derotator_deg))
    )
    m_ut = diattenuating_retarder(params.epsilon_ut, params.delta_ut)
    m_m4 = diattenuating_retarder(params.epsilon_m4, params.delta_m4)
    m_hwp = diattenuating_retarder(params.epsilon_hwp, params.delta_hwp)
    m_der = diattenuating_retarder(params.epsilon_der, params.delta_der)
    pol = polariser_matrix(params.d_ci if beam == "ordinary" else -params.d_ci)
    telescope = m_m4 @ rotation_matrix(a) @ m_ut @ rotation_matrix(p)
    common = _rotated(m_der, d + params.offset_der) @ _rotated(m_hwp, h + params.offset_hwp)
    return pol @ common @ telescope


def beam_rows(
    parang_deg: float | np.ndarray,
    altitude_deg: float | np.ndarray,
    hwp_deg: float | np.ndarray,
    derotator_deg: float | np.ndarray,
    params: ModelParameters,
) -> np.ndarray:
    """First rows of the ordinary and extraordinary system matrices, ``(..., 2, 4)``: the beam
    intensities are ``rows @ S`` (``S`` = incident Stokes vector)."""
    rows = [
        system_matrix(b, parang_deg, altitude_deg, hwp_deg, derotator_deg, params)[..., 0, :]
        for b in ("ordinary", "extraordinary")
    ]
    return np.stack(rows, axis=-2)


def double_difference_rows(rows_plus: np.ndarray, rows_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model rows of the double difference ``((o+ - e+) - (o- - e-))/2`` and the double sum
    ``((o+ + e+) + (o- + e-))/2`` from the beam rows ``(..., 2, 4)`` of the ``+`` and ``-``
    frames. Element 0 of the difference row over element 0 of the sum row is the instrumental
    polarisation; elements 1, 2 the Q/U efficiency and cross-talk."""
    diff = 0.5 * (
        (rows_plus[..., 0, :] - rows_plus[..., 1, :]) - (rows_minus[..., 0, :] - rows_minus[..., 1, :])
    )
    total = 0.5 * (
        (rows_plus[..., 0, :] + rows_plus[..., 1, :]) + (rows_minus[..., 0, :] + rows_minus[..., 1, :])
    )
    return diff, total


def derotator_angle(drot2_mean_deg: float | np.ndarray, tracking: str) -> np.ndarray:
    """Model derotator angle (deg) from the mean of ``INS4 DROT2 BEGIN/END``: itself in field
    tracking, plus half the pupil offset in pupil tracking (van Holstein et al. 2020)."""
    t = str(tracking).strip().upper()
    if t == "FIELD":
        return np.asarray(drot2_mean_deg, dtype=float) % 360.0
    if t == "PUPIL":
        return (np.asarray(drot2_mean_deg, dtype=float) + HALF_PUPIL_OFFSET_DEG) % 360.0
    raise ValueError(f"tracking mode must be PUPIL or FIELD (INS4 COMB ROT), got {tracking!r}")


def image_derotation_angle(
    parang_deg: float | np.ndarray, altitude_deg: float | np.ndarray, derotator_deg: float | np.ndarray
) -> np.ndarray:
    """Image derotation angle (deg, the Level 1 ``DEROT`` convention) implied by the derotator:
    ``p - a + 2 th_der + TN`` mod 360 (module doc). Pupil tracking gives ``p + 135.99 + TN``."""
    return (
        np.asarray(parang_deg) - np.asarray(altitude_deg) + 2.0 * np.asarray(derotator_deg) + TRUE_NORTH_DEG
    ) % 360.0


def drot2_keyword(
    parang_deg: float | np.ndarray,
    altitude_deg: float | np.ndarray,
    tracking: str,
    posang_deg: float = 0.0,
) -> np.ndarray:
    """``INS4 DROT2`` value (deg) the derotator shows: pupil tracking ``a/2 + 180`` (the real
    headers), field tracking ``(POSANG + a - p)/2`` so that the image derotation angle stays at
    ``POSANG + TN`` (the inverse of :func:`derotator_angle` and :func:`image_derotation_angle`)."""
    a = np.asarray(altitude_deg, dtype=float)
    t = str(tracking).strip().upper()
    if t == "PUPIL":
        return (0.5 * a + 180.0) % 360.0
    if t == "FIELD":
        return (0.5 * (posang_deg + a - np.asarray(parang_deg, dtype=float))) % 360.0
    raise ValueError(f"tracking mode must be PUPIL or FIELD, got {tracking!r}")
