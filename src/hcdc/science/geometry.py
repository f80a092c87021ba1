"""Image geometry conventions of hcdc, stated once and used everywhere (docs/conventions.md).

Conventions
-----------
* Arrays are indexed ``[..., y, x]``; images are displayed with ``origin='lower'`` (``y`` up,
  ``x`` right).
* The star of an ``ny x nx`` frame sits on pixel ``(y, x) = (ny // 2, nx // 2)``
  (:func:`frame_center`), for odd and even sizes alike. Every Level 1 cube is centred this way
  and every Level 2 algorithm assumes it.
* A final image is oriented **north up, east left** when its orientation is known (the angles
  include the pupil offset and true north: :mod:`hcdc.science.orientation`). Position angles (PA)
  are measured in degrees **east of north**: north (+y) is PA 0, east (-x) is PA 90. When the
  orientation is not known the same formula gives PAs relative to the detector.
* ``rotate_frame(image, angle)`` turns the image content **counter-clockwise** by ``angle``
  degrees about the frame centre (the astropy/VIP "positive = counter-clockwise" sense).
* ``derotate(cube, angles)`` turns frame ``k`` **clockwise** by ``angles[k]`` (that is,
  ``rotate_frame(cube[k], -angles[k])``). ``angles`` are *derotation angles*: the angle by
  which a frame must be turned clockwise to put north up. For pupil-tracking ADI on a
  non-mirrored detector they are **minus** (parallactic angle + the instrument's fixed offsets):
  the sky turns clockwise on the detector as the parallactic angle grows (docs/conventions.md,
  "Rotation sense"; :func:`hcdc.science.orientation.rotation_from_derotation`).
  VIP's ``angle_list`` has the **opposite** sign: VIP rotates with OpenCV's convention
  (positive = clockwise on an origin-lower display) and derotates by ``-angle_list``, so
  ``hcdc angles = -VIP angle_list`` (checked on the NACO beta Pic data: b is found with
  ``derotate(cube, -pa)`` and smeared with ``+pa``). ``hcdc postprocess`` takes VIP's
  convention by default and converts (:func:`hcdc.science.orientation.derotation_angles`).
* "theta" (VIP's convention) is the counter-clockwise angle from +x; on a north-up/east-left
  image ``theta = PA + 90``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "frame_center",
    "offsets_from_center",
    "distance_map",
    "position_angle_map",
    "annulus_mask",
    "circular_mask",
    "pixel_to_polar",
    "polar_to_pixel",
    "pa_to_theta",
    "theta_to_pa",
    "px_to_mas",
    "mas_to_px",
    "rotate_frame",
    "derotate",
    "shift_frame",
    "shift_frames",
]


def frame_center(shape: tuple[int, ...]) -> tuple[int, int]:
    """Pixel ``(y, x)`` of the star in a frame of ``shape`` (last two axes): ``(ny//2, nx//2)``."""
    ny, nx = shape[-2], shape[-1]
    return ny // 2, nx // 2


def offsets_from_center(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets ``(dy, dx)`` of every pixel from the frame centre, as 2-D float arrays."""
    cy, cx = frame_center(shape)
    ny, nx = shape[-2], shape[-1]
    dy, dx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return dy - cy, dx - cx


def distance_map(shape: tuple[int, ...]) -> np.ndarray:
    """Distance of every pixel from the frame centre, in pixels."""
    dy, dx = offsets_from_center(shape)
    return np.hypot(dy, dx)


def position_angle_map(shape: tuple[int, ...]) -> np.ndarray:
    """Position angle (deg, east of north, in [0, 360)) of every pixel of a north-up/east-left frame."""
    dy, dx = offsets_from_center(shape)
    return np.degrees(np.arctan2(-dx, dy)) % 360.0


def annulus_mask(shape: tuple[int, ...], r_in: float, r_out: float) -> np.ndarray:
    """Boolean mask of pixels with ``r_in <= r < r_out`` (pixels) from the frame centre."""
    r = distance_map(shape)
    return (r >= r_in) & (r < r_out)


def circular_mask(shape: tuple[int, ...], radius: float) -> np.ndarray:
    """Boolean mask of pixels closer than ``radius`` pixels to the frame centre."""
    return distance_map(shape) < radius


def pixel_to_polar(x: float, y: float, shape: tuple[int, ...]) -> tuple[float, float]:
    """Separation (px) and position angle (deg east of north) of pixel ``(x, y)``.

    Valid for a north-up / east-left image whose star is at :func:`frame_center`.
    """
    cy, cx = frame_center(shape)
    dx, dy = x - cx, y - cy
    return float(np.hypot(dx, dy)), float(np.degrees(np.arctan2(-dx, dy)) % 360.0)


def polar_to_pixel(separation: float, pa: float, shape: tuple[int, ...]) -> tuple[float, float]:
    """Pixel ``(x, y)`` at ``separation`` px and position angle ``pa`` (deg east of north)."""
    cy, cx = frame_center(shape)
    pa_rad = np.radians(pa)
    return float(cx - separation * np.sin(pa_rad)), float(cy + separation * np.cos(pa_rad))


def pa_to_theta(pa: float) -> float:
    """VIP's theta (deg counter-clockwise from +x) for a position angle on a north-up/east-left image."""
    return (pa + 90.0) % 360.0


def theta_to_pa(theta: float) -> float:
    """Position angle (deg east of north) for VIP's theta on a north-up/east-left image."""
    return (theta - 90.0) % 360.0


def px_to_mas(value_px: float | np.ndarray, pixel_scale_mas: float) -> float | np.ndarray:
    """Pixels to milliarcseconds for a plate scale in mas/px."""
    return value_px * pixel_scale_mas


def mas_to_px(value_mas: float | np.ndarray, pixel_scale_mas: float) -> float | np.ndarray:
    """Milliarcseconds to pixels for a plate scale in mas/px."""
    return value_mas / pixel_scale_mas


def _rotation_matrix_yx(angle_deg: float) -> np.ndarray:
    """Matrix mapping output (y, x) offsets to input offsets for a counter-clockwise rotation."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    # Output pixel at offset (dy, dx) takes its value from the input at the offset rotated by -a:
    # x_in = c*dx + s*dy ; y_in = -s*dx + c*dy
    return np.array([[c, -s], [s, c]])


def rotate_frame(image: np.ndarray, angle: float, order: int = 3, fill_value: float = np.nan) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``angle`` degrees about :func:`frame_center`.

    Pixels that come from outside the input are set to ``fill_value`` (NaN by default, so
    that later statistics can ignore them).
    """
    image = np.asarray(image)
    if angle % 360.0 == 0.0:
        return image.astype(np.result_type(image.dtype, np.float32), copy=True)
    matrix = _rotation_matrix_yx(angle)
    center = np.array(frame_center(image.shape), dtype=np.float64)
    offset = center - matrix @ center
    return ndimage.affine_transform(
        image, matrix, offset=offset, order=order, mode="constant", cval=fill_value, prefilter=order > 1
    ).astype(np.result_type(image.dtype, np.float32), copy=False)


def derotate(cube: np.ndarray, angles: np.ndarray, order: int = 3, fill_value: float = np.nan) -> np.ndarray:
    """Turn frame ``k`` of ``cube`` (frames, y, x) clockwise by ``angles[k]`` degrees.

    With derotation angles (see module docstring) the result is north-up / east-left.
    """
    cube = np.asarray(cube)
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if cube.ndim != 3 or cube.shape[0] != angles.size:
        raise ValueError(
            f"derotate needs a (frames, y, x) cube and one angle per frame; "
            f"got cube {cube.shape} and {angles.size} angles"
        )
    out = np.empty(cube.shape, dtype=np.result_type(cube.dtype, np.float32))
    for k in range(cube.shape[0]):
        out[k] = rotate_frame(cube[k], -angles[k], order=order, fill_value=fill_value)
    return out


def shift_frame(image: np.ndarray, dy: float, dx: float, method: str = "fourier") -> np.ndarray:
    """Shift ``image`` by ``(dy, dx)`` pixels (content moves towards +y, +x for positive values).

    ``method='fourier'`` (exact for band-limited images, wraps around the edges) or ``'spline'``
    (cubic spline, zero outside).
    """
    image = np.asarray(image, dtype=np.result_type(image.dtype, np.float32))
    if method == "fourier":
        spectrum = ndimage.fourier_shift(np.fft.fft2(image), (dy, dx))
        return np.fft.ifft2(spectrum).real.astype(image.dtype, copy=False)
    if method == "spline":
        return ndimage.shift(image, (dy, dx), order=3, mode="constant", cval=0.0)
    raise ValueError(f"unknown shift method {method!r}; use 'fourier' or 'spline'")


def shift_frames(cube: np.ndarray, dy: np.ndarray, dx: np.ndarray, method: str = "fourier") -> np.ndarray:
    """Shift every frame ``k`` of a (frames, y, x) cube by ``(dy[k], dx[k])`` pixels."""
    cube = np.asarray(cube)
    dy = np.broadcast_to(np.asarray(dy, dtype=np.float64), (cube.shape[0],))
    dx = np.broadcast_to(np.asarray(dx, dtype=np.float64), (cube.shape[0],))
    return np.stack([shift_frame(cube[k], dy[k], dx[k], method) for k in range(cube.shape[0])])
