"""Spherical geometry of ADQL on SQLite: the functions registered on each SQLite connection.

PostgreSQL evaluates ADQL geometry with pgSphere; SQLite has no spherical types, so the ADQL
translation (:mod:`hcdc.archive.adql.translate`) calls these Python functions instead, on
geometry values serialized as short strings (all angles in degrees, ICRS):

* ``P ra dec``: a point;
* ``C ra dec radius``: a circle (small circle of angular radius ``radius``);
* ``G ra1 dec1 ra2 dec2 ...``: a polygon with great-circle edges (convex, either orientation).

An STC-S ``s_region`` (``POLYGON ICRS ...`` / ``CIRCLE ICRS ...``, as ObsCore stores it) is read
by :func:`region_of_stcs`. Boundaries count as inside (as pgSphere's ``@``), up to 1e-12 rad.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence

Vector = tuple[float, float, float]
EPS = 1e-12


def vec(ra: float, dec: float) -> Vector:
    """Unit vector of (ra, dec) in degrees."""
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _cross(u: Vector, v: Vector) -> Vector:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _dot(u: Vector, v: Vector) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def distance_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angular distance (degrees) between two positions (haversine: exact at small angles)."""
    p1, p2, dl = math.radians(dec1), math.radians(dec2), math.radians(ra2 - ra1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _parse(value: str | None) -> tuple[str, list[float]] | None:
    if value is None:
        return None
    kind, *numbers = value.split()
    return kind, [float(n) for n in numbers]


def region_of_stcs(text: str | None) -> str | None:
    """The serialized geometry of an STC-S ``POLYGON``/``CIRCLE``/``POSITION`` string (frame ignored)."""
    if not text:
        return None
    words = text.split()
    shape = words[0].upper()
    numbers = [w for w in words[1:] if _is_number(w)]
    code = {"POLYGON": "G", "CIRCLE": "C", "POSITION": "P", "POINT": "P"}.get(shape)
    if code is None:
        raise ValueError(f"unsupported STC-S region {shape!r}")
    return " ".join([code, *numbers])


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _vertices(numbers: Sequence[float]) -> list[Vector]:
    return [vec(numbers[i], numbers[i + 1]) for i in range(0, len(numbers) - 1, 2)]


def _inside_polygon(p: Vector, vertices: list[Vector]) -> bool:
    """Whether p is inside a convex polygon given in either orientation.

    The inside is the side of the edges that holds the vertices' centroid (a convex polygon
    smaller than a hemisphere): testing "all on one side, either side" instead would also
    accept the region around the polygon's antipode.
    """
    n = len(vertices)
    centre = (sum(v[0] for v in vertices), sum(v[1] for v in vertices), sum(v[2] for v in vertices))
    orientation = 0.0
    for i in range(n):
        orientation = _dot(_cross(vertices[i], vertices[(i + 1) % n]), centre)
        if abs(orientation) > EPS:
            break
    sign = 1.0 if orientation >= 0 else -1.0
    return all(sign * _dot(_cross(vertices[i], vertices[(i + 1) % n]), p) >= -EPS for i in range(n))


def _arc_distance(p: Vector, a: Vector, b: Vector) -> float:
    """Angular distance (radians) from p to the great-circle arc a-b."""
    normal = _cross(a, b)
    norm = math.sqrt(_dot(normal, normal))
    if norm < EPS:
        return math.acos(max(-1.0, min(1.0, _dot(p, a))))
    n = tuple(c / norm for c in normal)
    # the foot of p on the great circle lies on the arc when it is between a and b
    foot = _cross(_cross(n, p), n)  # type: ignore[arg-type]
    if _dot(_cross(a, foot), n) >= 0 and _dot(_cross(foot, b), n) >= 0:
        return abs(math.asin(max(-1.0, min(1.0, _dot(p, n)))))  # type: ignore[arg-type]
    return min(math.acos(max(-1.0, min(1.0, _dot(p, a)))), math.acos(max(-1.0, min(1.0, _dot(p, b)))))


def _edges(vertices: list[Vector]) -> list[tuple[Vector, Vector]]:
    return [(vertices[i], vertices[(i + 1) % len(vertices)]) for i in range(len(vertices))]


def _arcs_cross(a1: Vector, a2: Vector, b1: Vector, b2: Vector) -> bool:
    n1, n2 = _cross(a1, a2), _cross(b1, b2)
    line = _cross(n1, n2)
    norm = math.sqrt(_dot(line, line))
    if norm < EPS:
        return False
    for sign in (1.0, -1.0):
        x = tuple(sign * c / norm for c in line)
        if (
            _dot(_cross(a1, x), n1) >= -EPS  # type: ignore[arg-type]
            and _dot(_cross(x, a2), n1) >= -EPS  # type: ignore[arg-type]
            and _dot(_cross(b1, x), n2) >= -EPS  # type: ignore[arg-type]
            and _dot(_cross(x, b2), n2) >= -EPS  # type: ignore[arg-type]
        ):
            return True
    return False


def contains(inner: str | None, outer: str | None) -> int | None:
    """ADQL CONTAINS: 1 when the region ``inner`` lies within ``outer``, else 0 (NULL in, NULL out)."""
    a, b = _parse(inner), _parse(outer)
    if a is None or b is None:
        return None
    (ka, na), (kb, nb) = a, b
    if kb == "P":
        return int(ka == "P" and distance_deg(na[0], na[1], nb[0], nb[1]) <= 1e-9)
    if kb == "C":
        centre, radius = (nb[0], nb[1]), nb[2]
        if ka == "P":
            return int(distance_deg(na[0], na[1], *centre) <= radius + 1e-12)
        if ka == "C":
            return int(distance_deg(na[0], na[1], *centre) + na[2] <= radius + 1e-12)
        return int(all(distance_deg(na[i], na[i + 1], *centre) <= radius for i in range(0, len(na) - 1, 2)))
    vertices = _vertices(nb)
    if ka == "P":
        return int(_inside_polygon(vec(na[0], na[1]), vertices))
    if ka == "C":
        centre = vec(na[0], na[1])
        radius = math.radians(na[2])
        return int(
            _inside_polygon(centre, vertices)
            and all(_arc_distance(centre, u, v) >= radius for u, v in _edges(vertices))
        )
    return int(all(_inside_polygon(p, vertices) for p in _vertices(na)))


def intersects(first: str | None, second: str | None) -> int | None:
    """ADQL INTERSECTS: 1 when the two regions overlap, else 0."""
    a, b = _parse(first), _parse(second)
    if a is None or b is None:
        return None
    if a[0] == "P":
        return contains(first, second)
    if b[0] == "P":
        return contains(second, first)
    (ka, na), (kb, nb) = a, b
    if ka == "C" and kb == "C":
        return int(distance_deg(na[0], na[1], nb[0], nb[1]) <= na[2] + nb[2] + 1e-12)
    if ka == "G" and kb == "C":
        (ka, na), (kb, nb) = (kb, nb), (ka, na)
    if ka == "C":  # circle and polygon
        centre, radius = vec(na[0], na[1]), math.radians(na[2])
        vertices = _vertices(nb)
        return int(
            _inside_polygon(centre, vertices)
            or any(_arc_distance(centre, u, v) <= radius for u, v in _edges(vertices))
        )
    va, vb = _vertices(na), _vertices(nb)
    if any(_inside_polygon(p, vb) for p in va) or any(_inside_polygon(p, va) for p in vb):
        return 1
    return int(any(_arcs_cross(a1, a2, b1, b2) for a1, a2 in _edges(va) for b1, b2 in _edges(vb)))


def _in_range(ra: float, dec: float, ra1: float, ra2: float, dec1: float, dec2: float) -> bool:
    """Whether (ra, dec) lies in the box ra1..ra2 (eastwards, degrees) x dec1..dec2."""
    if not dec1 - 1e-12 <= dec <= dec2 + 1e-12:
        return False
    return ra2 - ra1 >= 360.0 or (ra - ra1) % 360.0 <= (ra2 - ra1) + 1e-12


def _parallel_crossings(a: Vector, b: Vector, dec: float) -> list[float]:
    """Right ascensions (deg) where the great-circle arc a-b meets the parallel ``dec``."""
    normal = _cross(a, b)
    norm = math.sqrt(_dot(normal, normal))
    if norm < EPS or abs(dec) >= 90.0:
        return []
    nx, ny, nz = (c / norm for c in normal)
    # points (cos d cos l, cos d sin l, sin d) of the great circle: nx cos l + ny sin l = -nz tan d
    radius, rhs = math.hypot(nx, ny), -nz * math.tan(math.radians(dec))
    if radius < EPS or abs(rhs) > radius:
        return []
    phi, delta = math.atan2(ny, nx), math.acos(max(-1.0, min(1.0, rhs / radius)))
    found = []
    for lon in (phi + delta, phi - delta):
        p = vec(math.degrees(lon), dec)
        n = (nx, ny, nz)
        if _dot(_cross(a, p), n) >= -EPS and _dot(_cross(p, b), n) >= -EPS:
            found.append(math.degrees(lon) % 360.0)
    return found


def _meridian_arcs(ra: float, dec1: float, dec2: float) -> list[tuple[Vector, Vector]]:
    """The meridian ``ra`` from dec1 to dec2 as two great-circle arcs (never a degenerate 180°)."""
    middle = (dec1 + dec2) / 2
    return [(vec(ra, dec1), vec(ra, middle)), (vec(ra, middle), vec(ra, dec2))]


def range_intersects(field: str | None, ra1: float, ra2: float, dec1: float, dec2: float) -> bool:
    """Whether a region (serialized ``P``/``C``/``G``) overlaps the coordinate box of SIA's
    ``RANGE``: right ascensions ra1..ra2 (eastwards; a width of 360 is every RA) and declinations
    dec1..dec2, bounded by meridians (great circles) and parallels (small circles). Exact."""
    parsed = _parse(field)
    if parsed is None:
        return False
    kind, n = parsed
    full = ra2 - ra1 >= 360.0
    box = (ra1, ra2, dec1, dec2)
    if kind == "P":
        return _in_range(n[0], n[1], *box)
    meridians = [] if full else [arc for ra in (ra1, ra2) for arc in _meridian_arcs(ra, dec1, dec2)]
    if kind == "C":
        ra, dec, radius = n
        if _in_range(ra, dec, *box):
            return True
        centre = vec(ra, dec)
        gaps = [math.degrees(_arc_distance(centre, u, v)) for u, v in meridians]
        if full or (ra - ra1) % 360.0 <= ra2 - ra1:  # the nearest point of a parallel is on this meridian
            gaps += [abs(dec - dec1), abs(dec - dec2)]
        return min(gaps) <= radius + 1e-12
    vertices = _vertices(n)
    if any(_in_range(n[i], n[i + 1], *box) for i in range(0, len(n) - 1, 2)):
        return True
    corners = [(ra1, dec1), (ra1, dec2)] if full else [(ra1, dec1), (ra2, dec1), (ra2, dec2), (ra1, dec2)]
    if any(_inside_polygon(vec(ra, dec), vertices) for ra, dec in corners):
        return True
    for a, b in _edges(vertices):
        if any(_arcs_cross(a, b, u, v) for u, v in meridians):
            return True
        for dec in (dec1, dec2):
            if any(_in_range(ra, dec, *box) for ra in _parallel_crossings(a, b, dec)):
                return True
    return False


def distance(first: str | None, second: str | None) -> float | None:
    """ADQL DISTANCE between two points (degrees)."""
    a, b = _parse(first), _parse(second)
    if a is None or b is None:
        return None
    return distance_deg(a[1][0], a[1][1], b[1][0], b[1][1])


def area(region: str | None) -> float | None:
    """ADQL AREA (square degrees) of a circle or polygon (spherical excess); 0 for a point."""
    parsed = _parse(region)
    if parsed is None:
        return None
    kind, n = parsed
    if kind == "P":
        return 0.0
    if kind == "C":
        return 2 * math.pi * (1 - math.cos(math.radians(n[2]))) * (180 / math.pi) ** 2
    vertices = _vertices(n)
    # sum of the signed solid angles of the triangles (v0, vi, vi+1) (Van Oosterom & Strackee)
    total = 0.0
    for i in range(1, len(vertices) - 1):
        a, b, c = vertices[0], vertices[i], vertices[i + 1]
        numerator = _dot(a, _cross(b, c))
        denominator = 1 + _dot(a, b) + _dot(b, c) + _dot(c, a)
        total += 2 * math.atan2(numerator, denominator)
    return abs(total) * (180 / math.pi) ** 2


def coord(region: str | None, index: int) -> float | None:
    parsed = _parse(region)
    return None if parsed is None else parsed[1][index]


def _point(ra: float | None, dec: float | None) -> str | None:
    return None if ra is None or dec is None else f"P {float(ra)!r} {float(dec)!r}"


def _circle(ra: float | None, dec: float | None, radius: float | None) -> str | None:
    if ra is None or dec is None or radius is None:
        return None
    return f"C {float(ra)!r} {float(dec)!r} {float(radius)!r}"


def _circle_at(point: str | None, radius: float | None) -> str | None:
    parsed = _parse(point)
    return None if parsed is None else _circle(parsed[1][0], parsed[1][1], radius)


def _polygon(*numbers: float | None) -> str | None:
    if any(n is None for n in numbers):
        return None
    return "G " + " ".join(repr(float(n)) for n in numbers)  # type: ignore[arg-type]


def box_polygon(ra: float, dec: float, width: float, height: float) -> list[float]:
    """Corners (ra, dec pairs, degrees) of an ADQL BOX: a width x height box along the axes of
    the tangent plane at its centre."""
    hw, hh = math.radians(width) / 2, math.radians(height) / 2
    ra0, dec0 = math.radians(ra), math.radians(dec)
    out: list[float] = []
    for xi, eta in ((hw, hh), (-hw, hh), (-hw, -hh), (hw, -hh)):
        denom = math.cos(dec0) - eta * math.sin(dec0)
        a = ra0 + math.atan2(xi, denom)
        d = math.atan2(math.sin(dec0) + eta * math.cos(dec0), math.hypot(xi, denom))
        out += [math.degrees(a) % 360.0, math.degrees(d)]
    return out


def _box(ra: float | None, dec: float | None, width: float | None, height: float | None) -> str | None:
    if None in (ra, dec, width, height):
        return None
    return _polygon(*box_polygon(ra, dec, width, height))  # type: ignore[arg-type]


def _safe(function):  # noqa: ANN001, ANN202 - wraps a SQL function
    def call(*args):  # noqa: ANN002, ANN202
        try:
            return function(*args)
        except (ValueError, TypeError, IndexError, ZeroDivisionError):
            return None

    return call


SQLITE_FUNCTIONS = {
    "adql_point": (2, _point),
    "adql_circle": (3, _circle),
    "adql_circle_at": (2, _circle_at),
    "adql_polygon": (-1, _polygon),
    "adql_box": (4, _box),
    "adql_region": (1, region_of_stcs),
    "adql_contains": (2, contains),
    "adql_intersects": (2, intersects),
    "adql_distance": (2, distance),
    "adql_distance_deg": (4, distance_deg),
    "adql_area": (1, area),
    "adql_coord1": (1, lambda r: coord(r, 0)),
    "adql_coord2": (1, lambda r: coord(r, 1)),
}
#: math functions ADQL has that SQLite may lack (when compiled without SQLITE_ENABLE_MATH_FUNCTIONS)
SQLITE_MATH = {
    "sqrt": (1, math.sqrt),
    "exp": (1, math.exp),
    "ln": (1, math.log),
    "log": (2, lambda base, x: math.log(x, base)),
    "power": (2, math.pow),
    "sin": (1, math.sin),
    "cos": (1, math.cos),
    "tan": (1, math.tan),
    "asin": (1, math.asin),
    "acos": (1, math.acos),
    "atan": (1, math.atan),
    "atan2": (2, math.atan2),
    "cot": (1, lambda x: 1 / math.tan(x)),
    "degrees": (1, math.degrees),
    "radians": (1, math.radians),
    "pi": (0, lambda: math.pi),
    "ceil": (1, math.ceil),
    "floor": (1, math.floor),
    "trunc": (-1, lambda x, n=0: math.trunc(x * 10**n) / 10**n if n else float(math.trunc(x))),
    "mod": (2, math.fmod),
}


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    """Register ADQL's geometry and math functions on a raw sqlite3 connection (deterministic)."""
    for name, (nargs, function) in {**SQLITE_MATH, **SQLITE_FUNCTIONS}.items():
        connection.create_function(name, nargs, _safe(function), deterministic=True)
