"""Imaging polarimetry (IRDIS DPI, later ZIMPOL): pure functions from beams to Stokes maps.

Conventions (stated once here, repeated where used; docs/polarimetry.md)
-----------------------------------------------------------------------
* Images are north up / east left, indexed ``[y, x]`` (:mod:`hcdc.science.geometry`).
* Stokes ``Q > 0``: linear polarisation along north-south (angle 0 deg); ``U > 0``: along the
  direction 45 deg east of north (IAU convention). The angle of linear polarisation (AoLP)
  ``theta = 0.5 * arctan2(U, Q)`` is in degrees **east of north**, in ``[0, 180)``.
* Azimuthal Stokes (de Boer et al. 2020 form): with ``phi`` the position angle (deg east of north)
  of a pixel seen from the star,
  ``Q_phi = -Q cos(2 phi) - U sin(2 phi)`` and ``U_phi = Q sin(2 phi) - U cos(2 phi)``.
  Polarisation perpendicular to the star-pixel direction (single scattering by a disc) gives
  ``Q_phi = +P`` (the polarised intensity) and ``U_phi = 0``; radial polarisation gives
  ``Q_phi = -P``. Pixels east or west of the star of a pure ``+Q`` field have ``Q_phi = +Q``.
* The beams of one half-wave-plate (HWP) position are the *ordinary* (left IRDIS half, ``P0``)
  and *extraordinary* (right half, ``P90``) images; an ideal instrument records
  ``o = (I + S)/2`` and ``e = (I - S)/2`` with ``S = +Q, -Q, +U, -U`` at the HWP positions
  ``Q+ Q- U+ U-`` (``OCS DPI H2RT STOKES`` = ``Qplus Qminus Uplus Uminus``; HWP angles
  0, 45, 22.5, 67.5 deg).
"""

from hcdc.science.polarimetry.instrumental import InstrumentalPolarisation, correct_instrumental_polarisation
from hcdc.science.polarimetry.maps import (
    angle_of_linear_polarisation,
    azimuthal_stokes,
    degree_of_linear_polarisation,
    polarised_intensity,
    position_angle_from_star,
)
from hcdc.science.polarimetry.rotation import derotate_stokes, rotate_stokes
from hcdc.science.polarimetry.stokes import (
    HWP_ANGLES_DEG,
    HWP_STOKES,
    HWPCycles,
    StokesImages,
    double_difference,
    double_ratio,
    group_hwp_cycles,
    hwp_stokes_label,
    stokes_from_beams,
)

__all__ = [
    "HWP_ANGLES_DEG",
    "HWP_STOKES",
    "HWPCycles",
    "InstrumentalPolarisation",
    "StokesImages",
    "angle_of_linear_polarisation",
    "azimuthal_stokes",
    "correct_instrumental_polarisation",
    "degree_of_linear_polarisation",
    "derotate_stokes",
    "double_difference",
    "double_ratio",
    "group_hwp_cycles",
    "hwp_stokes_label",
    "polarised_intensity",
    "position_angle_from_star",
    "rotate_stokes",
    "stokes_from_beams",
]
