"""Signal-to-noise ratio with small-sample statistics (Mawet et al. 2014), at a position and as a map.

Definition (as VIP's ``snr``): for a test position at separation ``r`` px from the star, place
``n = floor(2 pi / alpha)`` apertures of diameter 1 FWHM on the circle of radius ``r``, separated
by ``alpha = 2 asin(fwhm / (2 r))`` and starting at the test position (going clockwise). With
``f0`` the flux in the first aperture and ``f_1..f_{n-1}`` those of the others (exact
pixel-overlap aperture sums, as photutils ``method='exact'``)::

    S/N = (f0 - mean(f_i)) / (std(f_i, ddof=1) * sqrt(1 + 1 / (n - 1)))

which follows a Student t distribution with ``n - 2`` degrees of freedom under the null
hypothesis. The map is exact: every pixel gets exactly the statistic above (no convolution
shortcut). Four-fold rotational symmetry of the pixel grid about the centre pixel means the
aperture weights are computed for one quadrant and applied to the four 90-degree rotations.

Two routes give the same numbers (to float rounding, ~1e-15 relative on the aperture sums): the
array route (numpy; aperture weights cached per frame geometry, fastest for repeated maps of
small frames) and the compiled route (numba; weights computed and used on the fly, nothing
stored, ~0.1 us per aperture), used by default when the geometry is too large to cache (full
SPHERE frames: ~4e8 apertures for a 1024^2 frame at FWHM 4 px).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from hcdc.runtime.blas import map_tasks, task_threads
from hcdc.science import geometry
from hcdc.science.postprocessing.photometry import _chord_primitive, aperture_sums

__all__ = ["SnrResult", "aperture_positions", "snr_at", "snr_map", "snr_map_region", "SNR_MAP_METHODS"]

SNR_MAP_METHODS = ("auto", "numpy", "compiled")


@dataclass(frozen=True)
class SnrResult:
    """S/N at one position with its ingredients (fluxes in image units x pixels)."""

    snr: float
    signal: float  # f0 - mean(background)
    noise: float  # std(background, ddof=1) * sqrt(1 + 1/(n-1))
    n_apertures: int
    source_flux: float
    background_fluxes: np.ndarray


def _n_apertures(separation: np.ndarray | float, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 2.0 * np.arcsin(np.minimum(fwhm / 2.0 / np.asarray(separation, dtype=np.float64), 1.0))
    return np.floor(2.0 * np.pi / alpha).astype(np.intp), alpha


def aperture_positions(
    x: float, y: float, fwhm: float, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(x, y)`` of the ``n`` apertures of the Mawet test at ``(x, y)``; the first is the source."""
    cy, cx = geometry.frame_center(shape)
    dx, dy = x - cx, y - cy
    separation = float(np.hypot(dx, dy))
    if not separation > fwhm / 2.0 + 1.0:
        raise ValueError(
            f"position ({x:.2f}, {y:.2f}) is {separation:.2f} px from the star; the S/N test "
            f"needs more than fwhm/2 + 1 = {fwhm / 2 + 1:.2f} px"
        )
    n, alpha = _n_apertures(separation, fwhm)
    phi = -alpha * np.arange(int(n))  # clockwise from the source
    c, s = np.cos(phi), np.sin(phi)
    return cx + c * dx - s * dy, cy + s * dx + c * dy


def snr_at(image: np.ndarray, x: float, y: float, fwhm: float) -> SnrResult:
    """Mawet 2014 S/N of ``image`` (north-up, star at the frame centre) at pixel ``(x, y)``."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"S/N needs a 2-D image; got shape {image.shape}")
    xs, ys = aperture_positions(x, y, fwhm, image.shape)
    fluxes = aperture_sums(image, xs, ys, fwhm / 2.0)
    background = fluxes[1:]
    n_bg = background.size
    if n_bg < 2:
        raise ValueError(f"only {n_bg} background aperture(s) at this separation; need at least 2")
    noise = float(background.std(ddof=1) * np.sqrt(1.0 + 1.0 / n_bg))
    signal = float(fluxes[0] - background.mean())
    return SnrResult(
        signal / noise if noise > 0 else np.inf, signal, noise, int(fluxes.size), float(fluxes[0]), background
    )


def snr_map_region(shape: tuple[int, ...], fwhm: float) -> tuple[float, float]:
    """Separations ``(r_min, r_max)`` (px) where :func:`snr_map` is computed (VIP ``snrmap``'s annulus)."""
    r_min = fwhm / 2.0 + 2.0
    return r_min, r_min + min(shape[-2], shape[-1]) / 2.0 - 1.5 * fwhm


@dataclass
class _Geometry:
    """Aperture weights for a chunk of the first-quadrant pixels of an odd square frame."""

    pixel_y: np.ndarray  # first-quadrant pixels (row, col) whose S/N is computed
    pixel_x: np.ndarray
    starts: np.ndarray  # query index of each pixel's source aperture (CSR-like offsets)
    counts: np.ndarray  # apertures per pixel
    base: np.ndarray  # flat index (in the padded image) of each aperture's lower-left block pixel
    offsets: np.ndarray  # flat offsets of the block pixels
    weights: np.ndarray  # (queries, block pixels) float32


_CACHE: OrderedDict[tuple, list[_Geometry]] = OrderedDict()
_CACHE_SIZE = 8
# Larger geometries (big frames) are recomputed chunk by chunk, not kept; the cache as a whole is
# held to the same bound (oldest first out), so a long-running process keeps at most ~256 MB.
_CACHE_BYTES = 256 * 2**20
# Apertures per chunk. Each aperture holds block^2 (~50 at fwhm 4) float32 weights plus float64
# and index temporaries of the same size, so a chunk is bounded both in apertures and in weights:
# a few tens of MB of temporaries whatever the frame size and FWHM (290 x 290 px, fwhm 4: 20 MB
# traced peak and 7.8 s, against 172 MB and 9.4 s with 200,000-aperture chunks; small chunks stay
# in cache).
_CHUNK_QUERIES = 10_000
_CHUNK_WEIGHTS = 500_000


def _block_pad(fwhm: float) -> tuple[int, int]:
    """Side of the pixel block touched by one aperture and the padding that keeps blocks inside."""
    block = 2 * int(np.floor(fwhm / 2.0 + 1.0)) + 1
    return block, block + 1


def _rectangle_area(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Signed area of the disk of ``radius`` (centred on the origin) inside the rectangle between
    the origin and the corner ``(a, b)`` (``a``, ``b`` clipped to ``[-R, R]``, broadcasting).

    For ``a, b >= 0``: ``a b`` when the corner lies in the disk, else ``b x_b + H(a) - H(x_b)``
    with ``x_b = sqrt(R^2 - b^2)`` and ``H`` the primitive of the half-chord; odd in ``a`` and in
    ``b``. Since ``H(x_b) = (x_b b + R^2 acos(b / R)) / 2``, the outside case is also
    ``(H(b) - H(R)) + H(a)``, which is how it is evaluated (one primitive per edge and axis, no
    ``x_b``: the two forms agree to float rounding, ~1e-16). Its mixed second difference over a
    pixel's corners is the pixel's exact overlap with the disk (the same quantity as
    :func:`photometry.aperture_weights`, from a primitive that costs a third of the array
    operations; the two agree to 1e-14).
    """
    r2 = radius * radius
    abs_a, abs_b = np.abs(a), np.abs(b)
    quarter = _chord_primitive(np.float64(radius), radius)  # H(R) = pi R^2 / 4
    outside = (_chord_primitive(abs_b, radius) - quarter) + _chord_primitive(abs_a, radius)
    area = np.where(abs_a * abs_a + abs_b * abs_b <= r2, abs_a * abs_b, outside)
    return area * (np.sign(a) * np.sign(b))


def _map_aperture_weights(
    x: np.ndarray, y: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x0, y0, weights)`` of exact circular apertures, as :func:`photometry.aperture_weights`
    (same block layout: ``2K+1`` pixels, ``K = floor(radius + 1)``), for the S/N-map geometry."""
    k = int(np.floor(radius + 1.0))
    x0 = np.rint(x).astype(np.intp) - k
    y0 = np.rint(y).astype(np.intp) - k
    edges = np.arange(2 * k + 2, dtype=np.float64) - 0.5  # pixel edges relative to x0 / y0
    ex = np.clip((x0 - x)[:, None] + edges[None, :], -radius, radius)
    ey = np.clip((y0 - y)[:, None] + edges[None, :], -radius, radius)
    weights = np.empty((x.size, 2 * k + 1, 2 * k + 1), dtype=np.float64)
    chunk = 1024  # keeps the (chunk, 2K+2, 2K+2) temporaries in cache
    for start in range(0, x.size, chunk):
        sl = slice(start, start + chunk)
        f = _rectangle_area(ex[sl, None, :], ey[sl, :, None], radius)  # (m, y corners, x corners)
        weights[sl] = f[:, 1:, 1:] - f[:, :-1, 1:] - f[:, 1:, :-1] + f[:, :-1, :-1]
    return x0, y0, weights


def _chunk_geometry(
    size: int, fwhm: float, py: np.ndarray, px: np.ndarray, dy: np.ndarray, dx: np.ndarray
) -> _Geometry:
    c = size // 2
    counts, alpha = _n_apertures(np.hypot(dy, dx), fwhm)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pixel_of_query = np.repeat(np.arange(px.size), counts)
    k = np.arange(counts.sum()) - np.repeat(starts, counts)
    phi = -alpha[pixel_of_query] * k
    ddx, ddy = dx[pixel_of_query], dy[pixel_of_query]
    qx = c + np.cos(phi) * ddx - np.sin(phi) * ddy
    qy = c + np.sin(phi) * ddx + np.cos(phi) * ddy
    x0, y0, w = _map_aperture_weights(qx, qy, fwhm / 2.0)
    block, pad = _block_pad(fwhm)
    padded_size = size + 2 * pad
    base = (y0 + pad) * padded_size + (x0 + pad)
    bj, bi = np.mgrid[0:block, 0:block]
    offsets = (bj * padded_size + bi).ravel()
    return _Geometry(py, px, starts, counts, base, offsets, w.reshape(w.shape[0], -1).astype(np.float32))


def _cached_bytes() -> int:
    """Memory held by the cached aperture weights (the bulk of a geometry)."""
    return sum(geo.weights.nbytes for geos in _CACHE.values() for geo in geos)


def _quadrant_pixels(
    size: int, fwhm: float, r_min: float, r_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-quadrant pixels ``(py, px)`` (dx > 0, dy >= 0; their three 90-degree rotations cover
    every other pixel once) with ``r_min <= r < r_max``, and their numbers of apertures."""
    dy, dx = geometry.offsets_from_center((size, size))
    r = np.hypot(dy, dx)
    py, px = np.nonzero((dx > 0) & (dy >= 0) & (r >= r_min) & (r < r_max))
    counts, _ = _n_apertures(r[py, px], fwhm)
    return py, px, counts


def _geometry_bytes(size: int, fwhm: float, r_min: float, r_max: float) -> int:
    """Bytes of float32 aperture weights of the quadrant geometry (what the cache would hold)."""
    counts = _quadrant_pixels(size, fwhm, r_min, r_max)[2]
    return int(counts.sum()) * _block_pad(fwhm)[0] ** 2 * 4


def _geometries(size: int, fwhm: float, r_min: float, r_max: float) -> tuple[int, Iterable[_Geometry]]:
    """Number of chunks and the chunks of first-quadrant pixel geometry (ordered by separation);
    cached when small enough, else generated lazily one at a time."""
    key = (size, round(float(fwhm), 9), round(float(r_min), 9), round(float(r_max), 9))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return len(_CACHE[key]), _CACHE[key]
    dy, dx = geometry.offsets_from_center((size, size))
    py, px, counts = _quadrant_pixels(size, fwhm, r_min, r_max)
    block_pixels = _block_pad(fwhm)[0] ** 2
    per_chunk = max(1, min(_CHUNK_QUERIES, _CHUNK_WEIGHTS // block_pixels))
    chunk_id = np.cumsum(counts) // per_chunk
    bounds = np.flatnonzero(np.diff(chunk_id)) + 1
    pieces = np.split(np.arange(py.size), bounds)
    chunks = (_chunk_geometry(size, fwhm, py[i], px[i], dy[py[i], px[i]], dx[py[i], px[i]]) for i in pieces)
    if counts.sum() * block_pixels * 4 > _CACHE_BYTES:
        return len(pieces), chunks
    geos = list(chunks)
    _CACHE[key] = geos
    while len(_CACHE) > 1 and (len(_CACHE) > _CACHE_SIZE or _cached_bytes() > _CACHE_BYTES):
        _CACHE.popitem(last=False)
    return len(geos), geos


def _chunk_snr(padded: np.ndarray, geo: _Geometry) -> np.ndarray:
    """S/N of the chunk's pixels on a padded, flattened (rotated) image."""
    sums = np.einsum(
        "qk,qk->q", padded[geo.base[:, None] + geo.offsets[None, :]], geo.weights, dtype=np.float64
    )
    source = sums[geo.starts]
    n_bg = geo.counts - 1
    # Background statistics per pixel: the source aperture is removed from the group sums.
    total = np.add.reduceat(sums, geo.starts)
    mean = (total - source) / n_bg
    dev = sums - np.repeat(mean, geo.counts)
    dev[geo.starts] = 0.0
    var = np.add.reduceat(dev * dev, geo.starts) / (n_bg - 1)
    noise = np.sqrt(var * (1.0 + 1.0 / n_bg))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (source - mean) / noise


# fdlibm's rational approximation of asin (Sun Microsystems, 1993): within 1 ulp of the C
# library's asin, but plain arithmetic that numba inlines (the library call was a third of the
# kernel's time).
_PIO2_HI = 1.57079632679489655800e00
_PIO2_LO = 6.12323399573676603587e-17
_PS = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)  # fmt: skip
_QS = (-2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02)  # fmt: skip


@njit(inline="always", cache=True)
def _asin(x):  # pragma: no cover
    """arcsin(x) for x in [-1, 1] by fdlibm's method (error below 1 ulp measured against numpy),
    both of its branches evaluated and one selected (no jump, so that a loop over apertures
    becomes SIMD instructions); the selected branch is fdlibm's operations, in its order."""
    ax = abs(x)
    small = ax < 0.5
    t = x * x if small else (1.0 - ax) * 0.5
    p = t * (_PS[0] + t * (_PS[1] + t * (_PS[2] + t * (_PS[3] + t * (_PS[4] + t * _PS[5])))))
    q = 1.0 + t * (_QS[0] + t * (_QS[1] + t * (_QS[2] + t * _QS[3])))
    pq = p / q
    s = math.sqrt(t)
    r = _PIO2_HI - (2.0 * (s + s * pq) - _PIO2_LO)
    big = r if x > 0 else -r
    return x + x * pq if small else big


@njit(inline="always", cache=True)
def _half_chord_primitive(u, radius, r2):  # pragma: no cover
    """Scalar :func:`photometry._chord_primitive` (same operations, same order)."""
    t = min(max(u / radius, -1.0), 1.0)
    return 0.5 * (u * math.sqrt(max(r2 - u * u, 0.0)) + r2 * _asin(t))


@intrinsic
def _block_sums4(typingctx, flat, w, o0, o1, o2, o3, w0, nb, row, w_step, acc):  # pragma: no cover
    """Weighted sums of four apertures over their ``nb x nb`` blocks, the four rotations of each
    as one 4-lane vector: ``acc[a, q] = sum_i sum_j flat[o_a + i row + 4 j + q] * w.flat[w0 + (i
    nb + j) w_step + a]``, every sum taken in the order ``(i, j)`` (row by row), with a separate
    multiplication and addition per term (no fused multiply-add), i.e. the bits of the scalar
    loop ``s += flat[...] * w``. Written as LLVM vector instructions because numba's compiler
    keeps that scalar loop scalar (16 accumulators; this takes 4 vector ones)."""
    for array, ndim in ((flat, 1), (w, 3), (acc, 2)):  # raw pointers: contiguous float64 only
        if not (isinstance(array, types.Array) and array.dtype == types.float64 and array.ndim == ndim):
            return None
        if array.layout != "C":
            return None
    sig = types.void(flat, w, o0, o1, o2, o3, w0, nb, row, w_step, acc)

    def codegen(context, builder, signature, args):
        flat_v, w_v, o0_v, o1_v, o2_v, o3_v, w0_v, nb_v, row_v, step_v, acc_v = args
        f64 = ir.DoubleType()
        vec = ir.VectorType(f64, 4)
        vptr = vec.as_pointer()
        i64 = ir.IntType(64)
        fptr = context.make_array(signature.args[0])(context, builder, flat_v).data
        wptr = context.make_array(signature.args[1])(context, builder, w_v).data
        aptr = context.make_array(signature.args[10])(context, builder, acc_v).data
        offsets = [o0_v, o1_v, o2_v, o3_v]
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * 4)) for _ in range(4)]
        four = ir.Constant(i64, 4)
        with cgutils.for_range(builder, nb_v) as outer:
            i = outer.index
            row_off = builder.mul(i, row_v)
            w_row = builder.mul(i, nb_v)
            with cgutils.for_range(builder, nb_v) as inner:
                j = inner.index
                col = builder.add(row_off, builder.mul(j, four))
                widx = builder.add(w0_v, builder.mul(builder.add(w_row, j), step_v))
                wv = builder.load(builder.bitcast(builder.gep(wptr, [widx]), vptr), align=8)
                for a in range(4):
                    idx = builder.add(offsets[a], col)
                    values = builder.load(builder.bitcast(builder.gep(fptr, [idx]), vptr), align=8)
                    weight = builder.shuffle_vector(
                        wv,
                        ir.Constant(vec, ir.Undefined),
                        ir.Constant(ir.VectorType(ir.IntType(32), 4), [a] * 4),
                    )
                    product = builder.fmul(values, weight)
                    builder.store(builder.fadd(builder.load(accs[a]), product), accs[a])
        for a in range(4):
            target = builder.bitcast(builder.gep(aptr, [ir.Constant(i64, 4 * a)]), vptr)
            builder.store(builder.load(accs[a]), target, align=8)
        return context.get_dummy_value()

    return sig, codegen


_BATCH = 32  # apertures whose weights are computed side by side (SIMD lanes; arrays stay in L1)


@njit(nogil=True, cache=True, error_model="numpy")
def _snr_quadrant_pixels(images, pad, c, py, px, fwhm, out):  # pragma: no cover
    """Compiled S/N of first-quadrant pixels ``(py, px)`` of an odd square frame (centre ``c``)
    and of their three 90-degree rotations: ``images`` (P, P, 4) float64 holds the four padded
    rotations (as in :func:`snr_map`, float32 values) side by side, ``out`` (4, pixels) float64
    gets the S/N.

    Same arithmetic as the array route: aperture centres (:func:`_chunk_geometry`), exact
    overlap weights from the signed disk-rectangle area (:func:`_rectangle_area`, primitives
    evaluated once per edge) rounded to float32, aperture sums in float64, and the statistics of
    :func:`_chunk_snr`. Differences: the order of the float64 sums and the asin above (measured
    differences ~1e-13 in S/N).

    The apertures of a pixel are taken ``_BATCH`` at a time and every step of the weights is a
    loop over the batch, run to a multiple of 8 lanes (which the compiler turns into whole SIMD
    instructions); the weighted sums take four apertures at a time, each aperture's four
    rotations as one 4-lane vector (:func:`_block_sums4`, the same additions in the same order).
    Every aperture gets the same floating-point operations in the same order as the
    one-aperture-at-a-time kernel it replaced (commit a182671, 26.6 CPU s for a 1024^2 frame;
    benchmarks/snr_map_kernels.py), except that the outside corners' ``b`` part is ``H(b) -
    H(R)`` instead of ``b x_b - H(x_b)`` (:func:`_rectangle_area`; one primitive per edge and
    axis instead of a square root and a primitive): the same values to float rounding, the
    float32 weights then differ by one float32 rounding step now and then (largest S/N
    difference 7.9e-11 on a 1024^2 random frame, FWHM 4, against commit ec35ef6, which had
    a182671's bits). Otherwise:

    * the block is the ``2 E + 1`` pixels, ``E = ceil(radius)``, around the aperture's nearest
      pixel, the only ones a disk of that radius can overlap;
    * every edge and corner of that block is computed (the corner areas do not depend on which
      others are), except that the outer edges, which no aperture centre brings inside the disk,
      take the clipped edges' constants without evaluating the primitive;
    * a pixel that does not overlap the disk (nearest corner outside) gets weight 0, and its
      product ``0 x value`` leaves the sum unchanged, so the sums are those of a loop that skips it.
    """
    radius = fwhm / 2.0
    r2 = radius * radius
    k_half = int(math.floor(radius + 1.0))
    e_half = int(math.ceil(radius))
    first = k_half - e_half  # first block column / row of the reduced block
    nb = 2 * e_half + 1
    ne = nb + 1
    B = _BATCH
    h_edge = _half_chord_primitive(radius, radius, r2)
    g_edge = 0.0 * radius - _half_chord_primitive(0.0, radius, r2)
    qx = np.empty(B)
    qy = np.empty(B)
    x0 = np.empty(B)
    y0 = np.empty(B)
    ex = np.empty((ne, B))
    ey = np.empty((ne, B))
    ax = np.empty((ne, B))
    ay = np.empty((ne, B))
    hx = np.empty((ne, B))
    gy = np.empty((ne, B))
    sx = np.empty((ne, B))
    sy = np.empty((ne, B))
    near_x = np.empty((nb, B))
    near_y = np.empty((nb, B))
    f = np.empty((ne, ne, B))
    w = np.zeros((nb, nb, B))
    side = images.shape[1]
    flat = images.ravel()
    nmax = 8
    sums = np.empty((nmax, 4))
    acc = np.empty((4, 4))
    cos_k = np.empty(nmax)
    sin_k = np.empty(nmax)
    last_separation = -1.0
    n = 0
    for idx in range(py.size):
        dy = py[idx] - c
        dx = px[idx] - c
        separation = math.hypot(dy, dx)
        if separation != last_separation:
            alpha = 2.0 * math.asin(min(fwhm / 2.0 / separation, 1.0))
            n = int(math.floor(2.0 * math.pi / alpha))
            if n > nmax:
                nmax = 2 * n
                sums = np.empty((nmax, 4))
                cos_k = np.empty(nmax)
                sin_k = np.empty(nmax)
            for k in range(n):
                phi = -alpha * k
                cos_k[k] = math.cos(phi)
                sin_k[k] = math.sin(phi)
            last_separation = separation
        for k_start in range(0, n, B):
            m = min(B, n - k_start)
            # Lanes up to a multiple of 8 (whole SIMD vectors, no scalar remainder loops): the
            # lanes past m repeat the batch's first aperture and their sums are not used.
            mm = min(B, (m + 7) // 8 * 8)
            for t in range(mm):
                kk = k_start + t if t < m else k_start
                cp = cos_k[kk]
                sp = sin_k[kk]
                qx[t] = c + cp * dx - sp * dy
                qy[t] = c + sp * dx + cp * dy
                x0[t] = np.rint(qx[t]) - k_half
                y0[t] = np.rint(qy[t]) - k_half
            for e in range(ne):
                edge = (e + first) - 0.5
                # Edges that no aperture centre can bring inside the disk (the outer ones): the
                # clipped constants, no primitive evaluated (a branch taken the same way each time).
                outer = e + first - k_half - 1.0 >= radius or e + first - k_half <= -radius
                for t in range(mm):
                    a = min(max((x0[t] - qx[t]) + edge, -radius), radius)
                    b = min(max((y0[t] - qy[t]) + edge, -radius), radius)
                    ex[e, t] = a
                    ey[e, t] = b
                    abs_a = abs(a)
                    abs_b = abs(b)
                    ax[e, t] = abs_a
                    ay[e, t] = abs_b
                    sx[e, t] = (a > 0.0) - (a < 0.0)
                    sy[e, t] = (b > 0.0) - (b < 0.0)
                if outer:
                    # Clipped in every lane (always, by the argument above; checked, as a
                    # reduction, since the compiler evaluates both sides of a per-lane choice):
                    # the constants alone, no primitive.
                    clipped = True
                    for t in range(mm):
                        clipped &= (ax[e, t] >= radius) & (ay[e, t] >= radius)
                    if clipped:
                        for t in range(mm):
                            hx[e, t] = h_edge
                            gy[e, t] = g_edge
                    else:
                        for t in range(mm):
                            hx[e, t] = (
                                h_edge if ax[e, t] >= radius else _half_chord_primitive(ax[e, t], radius, r2)
                            )
                            abs_b = ay[e, t]
                            if abs_b >= radius:
                                gy[e, t] = g_edge
                            else:
                                gy[e, t] = _half_chord_primitive(abs_b, radius, r2) - h_edge
                else:
                    for t in range(mm):
                        abs_a = ax[e, t]
                        abs_b = ay[e, t]
                        hx[e, t] = _half_chord_primitive(abs_a, radius, r2)
                        # H(b) - H(R), the outside corner's b part (_rectangle_area)
                        gy[e, t] = _half_chord_primitive(abs_b, radius, r2) - h_edge
            for e in range(nb):
                for t in range(mm):
                    a0 = ex[e, t]
                    a1 = ex[e + 1, t]
                    near_x[e, t] = 0.0 if (a0 < 0.0 and 0.0 < a1) else min(abs(a0), abs(a1))
                    b0 = ey[e, t]
                    b1 = ey[e + 1, t]
                    near_y[e, t] = 0.0 if (b0 < 0.0 and 0.0 < b1) else min(abs(b0), abs(b1))
            for i in range(ne):
                for j in range(ne):
                    for t in range(mm):
                        abs_b = ay[i, t]
                        inside = ax[j, t] * ax[j, t] + abs_b * abs_b <= r2
                        area = ax[j, t] * abs_b if inside else gy[i, t] + hx[j, t]
                        f[i, j, t] = area * (sx[j, t] * sy[i, t])
            for i in range(nb):
                for j in range(nb):
                    for t in range(mm):
                        wv = np.float64(
                            np.float32(f[i + 1, j + 1, t] - f[i, j + 1, t] - f[i + 1, j, t] + f[i, j, t])
                        )
                        ny = near_y[i, t]
                        nx = near_x[j, t]
                        w[i, j, t] = 0.0 if ny * ny + nx * nx >= r2 else wv
            # The weighted sums, four apertures at a time, the four rotations of each as one
            # vector (_block_sums4): each aperture's sums are taken over the block in the same
            # order, with the same operations, as the gathered loop of 07ac837 (same bits).
            for t in range(0, m, 4):
                _block_sums4(
                    flat,
                    w,
                    ((int(y0[t + 0]) + first + pad) * side + int(x0[t + 0]) + first + pad) * 4,
                    ((int(y0[t + 1]) + first + pad) * side + int(x0[t + 1]) + first + pad) * 4,
                    ((int(y0[t + 2]) + first + pad) * side + int(x0[t + 2]) + first + pad) * 4,
                    ((int(y0[t + 3]) + first + pad) * side + int(x0[t + 3]) + first + pad) * 4,
                    t,
                    nb,
                    side * 4,
                    B,
                    acc,
                )
                for a in range(4):
                    if t + a < m:
                        for q in range(4):
                            sums[k_start + t + a, q] = acc[a, q]
        n_bg = n - 1
        for q in range(4):
            source = sums[0, q]
            total = 0.0
            for k in range(n):
                total += sums[k, q]
            mean = (total - source) / n_bg
            var = 0.0
            for k in range(1, n):
                d = sums[k, q] - mean
                var += d * d
            var /= n_bg - 1
            noise = math.sqrt(var * (1.0 + 1.0 / n_bg))
            out[q, idx] = (source - mean) / noise


def _snr_map_compiled(
    padded: list[np.ndarray], pad: int, size: int, fwhm: float, py: np.ndarray, px: np.ndarray
) -> np.ndarray:
    """(4, pixels) S/N of the first-quadrant pixels and their rotations, the pixels shared between
    the worker threads."""
    # float64 copies of the float32 values (exact): the sums gather them without a conversion
    images = np.stack([p.reshape(size + 2 * pad, size + 2 * pad) for p in padded], axis=-1).astype(np.float64)
    out = np.empty((4, py.size))
    # One part per core (hcdc.runtime.blas.task_threads): every pixel's value is computed alone
    # (the shared rotations depend on its separation only), so the parts do not change a bit.
    n_parts = task_threads() if py.size >= 256 else 1
    # Pixels of one separation consecutively (the kernel reuses their aperture rotations), the
    # separations dealt out in turn to the threads so that both get as many large ones.
    sep2 = (py.astype(np.int64) - size // 2) ** 2 + (px.astype(np.int64) - size // 2) ** 2
    order = np.argsort(sep2, kind="stable")
    rank = np.cumsum(np.concatenate([[0], np.diff(sep2[order]) != 0]))
    parts = [order[rank % n_parts == p] for p in range(n_parts)]

    def work(idx: np.ndarray) -> None:
        values = np.empty((4, idx.size))
        _snr_quadrant_pixels(images, pad, float(size // 2), py[idx].astype(np.float64),
                             px[idx].astype(np.float64), float(fwhm), values)  # fmt: skip
        out[:, idx] = values

    map_tasks(work, parts, n_parts)
    return out


def snr_map(
    image: np.ndarray,
    fwhm: float,
    r_min: float | None = None,
    r_max: float | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Exact Mawet 2014 S/N of every pixel of ``image`` between ``r_min`` and ``r_max`` px (else NaN).

    Defaults: the annulus of VIP's ``snrmap`` (:func:`snr_map_region`). Each pixel's value equals
    ``snr_at(image, x, y, fwhm).snr``. NaN pixels of ``image`` count as 0. The cost grows as the
    cube of the outer radius (pixels x apertures per pixel); memory stays bounded: pixels are
    processed in chunks of consecutive separations, and ``progress(done, total)`` is called
    after each chunk.

    ``method``: ``'numpy'`` (aperture weights as arrays, cached per geometry when below 256 MB),
    ``'compiled'`` (numba kernel, weights never stored: a full 1024^2 SPHERE frame at FWHM 4 px
    in seconds instead of minutes) or ``'auto'`` (default: numpy while the geometry fits the
    cache, compiled beyond). Both give the same values to float rounding (the float64 sums are
    taken in another order; measured differences ~1e-13 in S/N).
    """
    if method not in SNR_MAP_METHODS:
        raise ValueError(f"unknown S/N map method {method!r}; use one of {SNR_MAP_METHODS}")
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if image.ndim != 2:
        raise ValueError(f"S/N map needs a 2-D image; got shape {image.shape}")
    if fwhm <= 0:
        raise ValueError(f"fwhm must be positive; got {fwhm}")
    ny, nx = image.shape
    default_min, default_max = snr_map_region(image.shape, fwhm)
    r_min = max(default_min if r_min is None else r_min, fwhm / 2.0 + 1.0 + 1e-9)
    r_max = default_max if r_max is None else r_max
    # Embed in an odd square frame with the star on its centre pixel so that 90-degree
    # rotations (np.rot90) map the pixel grid onto itself about the star.
    cy, cx = geometry.frame_center(image.shape)
    half = max(cy, cx, ny - 1 - cy, nx - 1 - cx)
    size = 2 * half + 1
    square = np.zeros((size, size), dtype=np.float64)
    square[half - cy : half - cy + ny, half - cx : half - cx + nx] = image
    index = np.full((size, size), -1, dtype=np.intp)
    index[half - cy : half - cy + ny, half - cx : half - cx + nx] = np.arange(ny * nx).reshape(ny, nx)
    _, pad = _block_pad(fwhm)
    padded = [np.pad(np.rot90(square, q).astype(np.float32), pad).ravel() for q in range(4)]
    targets = [np.rot90(index, q) for q in range(4)]
    out = np.full(ny * nx, np.nan)
    if method == "auto":
        method = "numpy" if _geometry_bytes(size, fwhm, r_min, r_max) <= _CACHE_BYTES else "compiled"
    if method == "compiled":
        py, px, counts = _quadrant_pixels(size, fwhm, r_min, r_max)
        # By separation (pixels of one separation consecutively: see _snr_map_compiled).
        order = np.argsort((py - half) ** 2 + (px - half) ** 2, kind="stable")
        py, px, counts = py[order], px[order], counts[order]
        # Progress in ~20 pieces of equal aperture counts (pixels ordered by separation).
        piece = np.minimum(np.cumsum(counts) * 20 // max(int(counts.sum()), 1), 19)
        bounds = np.flatnonzero(np.diff(piece)) + 1
        pieces = np.split(np.arange(py.size), bounds)
        for done, sel in enumerate(pieces, start=1):
            values = _snr_map_compiled(padded, pad, size, fwhm, py[sel], px[sel])
            for q in range(4):
                target = targets[q][py[sel], px[sel]]
                inside = target >= 0
                out[target[inside]] = values[q][inside]
            if progress is not None:
                progress(done, len(pieces))
        return out.reshape(ny, nx)
    n_chunks, chunks = _geometries(size, fwhm, r_min, r_max)
    for done, geo in enumerate(chunks, start=1):
        for q in range(4):
            values = _chunk_snr(padded[q], geo)
            target = targets[q][geo.pixel_y, geo.pixel_x]
            inside = target >= 0
            out[target[inside]] = values[inside]
        if progress is not None:
            progress(done, n_chunks)
    return out.reshape(ny, nx)
