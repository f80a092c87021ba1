"""Angle conventions of ADI sequences and the sky orientation of final images (pure functions).

The full statement of hcdc's conventions is ``docs/conventions.md``; this module implements the
part about angles and orientation.

Angle conventions of the angles a user brings
---------------------------------------------
``parallactic`` (the default of ``hcdc postprocess``)
    The angles the rest of the field passes: VIP's ``angle_list``, pyKLIP's and PynPoint's
    parallactic angles, files such as VIP's ``naco_betapic_pa.fits``. VIP turns frame ``k`` by
    ``-angle_list[k]`` with OpenCV's sense of rotation, which is hcdc's
    :func:`hcdc.science.geometry.derotate` with ``-angle_list[k]``. So
    ``derotation = -(angle + pupil_offset + true_north)``.
``derotation``
    Derotation angles of vlt-sphere (``*_derot.fits``, ``DEROT = PARANG + pupil offset + true
    north``), of VIP (``angle_list`` *are* derotation angles, VIP PR #640), of IRDAP and of hcdc
    Level 1 products that say ``HCDC ROTSENSE = 'CCW'``: frame ``k`` turned **counter-clockwise**
    (origin lower) by ``angle[k]`` is north up. Same sign as ``parallactic``; the name says that
    the offsets are usually already in. ``derotation = -(angle + pupil_offset + true_north)``.
``hcdc-clockwise``
    hcdc's angles before (Level 1 ``DEROT`` of products without ``ROTSENSE``; ``derotation`` in
    ``l2-postprocess`` <= 1.3): frame ``k`` turned **clockwise** by ``angle[k]`` is north up.
    ``derotation = angle + pupil_offset + true_north``. On a real, non-mirrored SPHERE detector
    this is the wrong sense (docs/conventions.md, "Rotation sense"): kept so that old products
    rerun as they were.

Orientation
-----------
The orientation of the final image is *known* only when the instrument's offsets are given
(``pupil_offset``, e.g. NACO +104.84, SPHERE/IRDIS +135.99 deg; ``true_north``, NACO -0.45,
SPHERE -1.75 deg) or when the angles already include them (a Level 1 product says so in its
header). Then the image is north up / east left and position angles are east of north. Otherwise
it is the detector frame at angle 0 and position angles are *relative to the detector*: measured
from +y towards -x, the same formula, but not on the sky.

Some detectors are mirror images of the sky (VIP's NACO beta Pic cube: x and y swapped). With
``transposed=True`` every frame is transposed (x <-> y) before derotation, which turns the
rotation the other way: the derotation angles change sign. The final image is then north up /
east left as usual.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "ANGLE_CONVENTIONS",
    "AngleConvention",
    "Orientation",
    "check_pointing",
    "LEGACY_DEROTATION",
    "ROTSENSE_CCW",
    "derotation_angles",
    "level1_convention",
    "oriented_cube",
    "rotation_from_derotation",
]

AngleConvention = Literal["parallactic", "derotation", "hcdc-clockwise"]
ANGLE_CONVENTIONS: tuple[str, ...] = ("parallactic", "derotation", "hcdc-clockwise")
#: hcdc's clockwise derotation angles (Level 1 products without ``ROTSENSE``, ``l2-postprocess`` <= 1.3).
LEGACY_DEROTATION = "hcdc-clockwise"
#: Value of the ``ROTSENSE`` card (``HIERARCH HCDC ROTSENSE`` of a Level 1 cube, ``ROTSENSE`` of its
#: DEROT HDU): frame k turned counter-clockwise (origin lower) by DEROT[k] is north up.
ROTSENSE_CCW = "CCW"


def rotation_from_derotation(derot_deg: np.ndarray | float) -> np.ndarray:
    """hcdc derotation angles (deg, for :func:`hcdc.science.geometry.derotate`) from derotation
    angles in the vlt-sphere / VIP / IRDAP sense (deg; SPHERE Level 1 ``DEROT`` =
    ``parang + pupil offset + true north``): ``-derot``.

    The one place where the sign between the ecosystem's angles and hcdc's rotation is stated.
    VIP turns frame ``k`` by ``-angle_list[k]`` in OpenCV's sense (clockwise for positive angles on
    an origin-lower display) and IRDAP calls ``scipy.ndimage.rotate(frame, -derot)`` (same sense):
    both turn the frame counter-clockwise by ``derot``, which is ``geometry.derotate(cube, -derot)``.
    Physically (pupil tracking, non-mirrored detector) the zenith, at sky PA = parallactic angle
    ``q``, stays fixed on the detector, so north turns clockwise on it as ``q`` grows and the frame
    must be turned counter-clockwise by ``q`` + const (tests/science/test_rotation_sense.py).
    """
    return -np.asarray(derot_deg, dtype=np.float64)


def level1_convention(header: Any, prefix: str = "HIERARCH HCDC ") -> str | None:
    """The angle convention of an hcdc Level 1 product's ``DEROT`` from its header (``prefix``
    ``'HIERARCH HCDC '`` for the cube's primary header, ``''`` for the DEROT HDU), None when it
    declares none: ``'derotation'`` when it says ``ROTSENSE = 'CCW'`` (products written since the
    sense was fixed), :data:`LEGACY_DEROTATION` for ``ANGCONV = 'derotation'`` without it (products
    written before: their frames were derotated clockwise), else the declared ``ANGCONV``."""
    convention = header.get(f"{prefix}ANGCONV")
    if convention is None:
        return None
    convention = str(convention).strip()
    if convention == "derotation":
        sense = str(header.get(f"{prefix}ROTSENSE", "")).strip().upper()
        return "derotation" if sense == ROTSENSE_CCW else LEGACY_DEROTATION
    return convention


def check_pointing(ra_deg: float | None, dec_deg: float | None) -> None:
    """Raise ValueError when a given RA (deg, [0, 360)) or Dec (deg, [-90, 90]) is out of range."""
    if ra_deg is not None and not (math.isfinite(ra_deg) and 0.0 <= ra_deg < 360.0):
        raise ValueError(f"target RA must be in [0, 360) deg; got {ra_deg}")
    if dec_deg is not None and not (math.isfinite(dec_deg) and -90.0 <= dec_deg <= 90.0):
        raise ValueError(f"target Dec must be in [-90, 90] deg; got {dec_deg}")


@dataclass(frozen=True)
class Orientation:
    """How the final image of a reduction sits on the sky, and where the target is.

    ``known``: the image is north up / east left (else: detector frame, PAs relative to the
    detector). ``convention``: the convention of the input angles; ``pupil_offset_deg`` and
    ``true_north_deg`` (deg) the offsets added to them (None when not given); ``transposed``:
    frames were transposed (mirror detector) before derotation. ``ra_deg``, ``dec_deg``: the
    target (ICRS, deg), on the star pixel, when known (they give a celestial WCS).
    """

    known: bool = False
    convention: str = "derotation"
    pupil_offset_deg: float | None = None
    true_north_deg: float | None = None
    transposed: bool = False
    ra_deg: float | None = None
    dec_deg: float | None = None

    @property
    def pa_reference(self) -> str:
        """``'sky'`` (PA east of north) or ``'detector'`` (PA from +y towards -x of the detector)."""
        return "sky" if self.known else "detector"

    @property
    def has_pointing(self) -> bool:
        return self.ra_deg is not None and self.dec_deg is not None

    def with_pointing(self, ra_deg: float | None, dec_deg: float | None) -> Orientation:
        """The same orientation with the target's RA/Dec (deg); checks their ranges."""
        if (ra_deg is None) != (dec_deg is None):
            raise ValueError("give both the target's RA and Dec (deg), or neither")
        check_pointing(ra_deg, dec_deg)
        return Orientation(
            self.known,
            self.convention,
            self.pupil_offset_deg,
            self.true_north_deg,
            self.transposed,
            None if ra_deg is None else float(ra_deg),
            None if dec_deg is None else float(dec_deg),
        )

    def describe(self) -> str:
        """One line for people: what the image's axes and PAs mean."""
        if not self.known:
            return (
                "orientation unknown: the image is in the detector frame and position angles are "
                "relative to the detector (from +y towards -x), not on the sky; give the pupil "
                "offset and true north (--pupil-offset, --true-north) for PAs on the sky"
            )
        parts = [f"north up / east left ({self.convention} angles"]
        if self.pupil_offset_deg is not None:
            parts.append(f" + pupil offset {self.pupil_offset_deg:g}")
        if self.true_north_deg is not None:
            parts.append(f" + true north {self.true_north_deg:g} deg")
        if self.transposed:
            parts.append(", frames transposed")
        return "".join(parts) + "); position angles east of north"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pa_reference"] = self.pa_reference
        return out

    def header_cards(self) -> list[tuple[str, Any, str]]:
        """FITS cards (keyword, value, comment) stating the orientation; read by :meth:`from_header`."""
        cards: list[tuple[str, Any, str]] = [
            (
                "ORIENT",
                "NORTH_UP_EAST_LEFT" if self.known else "DETECTOR",
                "image orientation (DETECTOR: not known on sky)",
            ),
            (
                "PACONV",
                "EAST_OF_NORTH" if self.known else "DETECTOR",
                "PA: east of north, or from +y to -x of detector",
            ),
            ("ANGCONV", self.convention, "convention of the input angles"),
            ("TRANSPOS", bool(self.transposed), "frames transposed (x<->y) before derotation"),
        ]
        if self.pupil_offset_deg is not None:
            cards.append(("PUPOFF", float(self.pupil_offset_deg), "[deg] pupil offset added to the angles"))
        if self.true_north_deg is not None:
            cards.append(("TRUENRTH", float(self.true_north_deg), "[deg] true north added to the angles"))
        if self.ra_deg is not None and self.dec_deg is not None:
            cards.append(("RA", float(self.ra_deg), "[deg] target RA (ICRS), on the star pixel"))
            cards.append(("DEC", float(self.dec_deg), "[deg] target Dec (ICRS), on the star pixel"))
        return cards

    @classmethod
    def from_header(cls, header: Any) -> Orientation:
        """The orientation written by :meth:`header_cards` (unknown when ``ORIENT`` is absent)."""
        known = str(header.get("ORIENT", "")).strip().upper() == "NORTH_UP_EAST_LEFT"

        def opt(key: str) -> float | None:
            return float(header[key]) if key in header else None

        return cls(
            known,
            str(header.get("ANGCONV", "derotation")).strip() or "derotation",
            opt("PUPOFF"),
            opt("TRUENRTH"),
            bool(header.get("TRANSPOS", False)),
            opt("RA") if known else None,
            opt("DEC") if known else None,
        )


def derotation_angles(
    angles: np.ndarray,
    convention: str = "parallactic",
    pupil_offset_deg: float | None = None,
    true_north_deg: float | None = None,
    transposed: bool = False,
) -> tuple[np.ndarray, Orientation]:
    """hcdc derotation angles (deg, :func:`hcdc.science.geometry.derotate`) and the orientation.

    ``angles`` (deg, one per frame) are in ``convention`` (``'parallactic'``: VIP/pyKLIP
    ``angle_list``; ``'derotation'``: vlt-sphere/VIP derotation angles, same sense;
    ``'hcdc-clockwise'``: hcdc's before, opposite sense; module docstring). The orientation is
    known when ``pupil_offset_deg`` is given (``true_north_deg`` then defaults to 0; give
    ``pupil_offset_deg=0`` for angles that already include the offsets). ``transposed`` (mirror
    detectors; needs the offsets) means the frames will be transposed by :func:`oriented_cube`,
    and the angles change sign for it.
    Raises ``ValueError`` naming the bad parameter.
    """
    if convention not in ANGLE_CONVENTIONS:
        raise ValueError(
            f"angle convention must be one of {', '.join(ANGLE_CONVENTIONS)}; got {convention!r}"
        )
    for name, value in (("pupil offset", pupil_offset_deg), ("true north", true_north_deg)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite angle in degrees; got {value}")
    if true_north_deg is not None and pupil_offset_deg is None:
        raise ValueError(
            "a true-north correction alone does not fix the orientation: give the pupil offset too "
            "(0 when the angles already include it)"
        )
    known = pupil_offset_deg is not None
    if transposed and not known:
        raise ValueError("transposing the frames (mirror detector) needs the pupil offset and true north")
    values = np.asarray(angles, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError("angles contain NaN or infinite values")
    offset = (pupil_offset_deg or 0.0) + (true_north_deg or 0.0)
    if convention == LEGACY_DEROTATION:
        derot = values + offset
    else:  # parallactic and derotation angles turn the same way (VIP, vlt-sphere, IRDAP)
        derot = rotation_from_derotation(values + offset)
    if transposed:
        # Transposing a frame mirrors it: a rotation of the sky turns the other way on it.
        derot = -derot
    orientation = Orientation(
        known,
        convention,
        None if pupil_offset_deg is None else float(pupil_offset_deg),
        None if true_north_deg is None else (float(true_north_deg) if known else None),
        bool(transposed),
    )
    return derot, orientation


def oriented_cube(cube: np.ndarray, orientation: Orientation) -> np.ndarray:
    """``cube`` (..., y, x) as the reduction sees it: a transposed *view* (x <-> y) when
    ``orientation.transposed``, else ``cube`` itself (no copy either way)."""
    return np.swapaxes(cube, -1, -2) if orientation.transposed else cube
