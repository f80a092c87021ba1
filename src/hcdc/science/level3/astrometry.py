"""Relative astrometry of a companion candidate with respect to its host star.

Conventions (used by every module of :mod:`hcdc.science.level3`):

* offsets in milliarcseconds (mas): ``ra`` is the offset in right ascension times cos(Dec),
  positive to the **east**; ``dec`` positive to the north (orbitize's ``raoff``/``decoff``);
* separations in mas, position angles in degrees east of north, in [0, 360);
* epochs as Modified Julian Dates (UTC);
* the errors of one epoch are a 2x2 covariance of (ra, dec) in mas^2, so that correlated
  measurements (e.g. GRAVITY's ``radec_corr``) and converted (sep, PA) errors are exact to
  first order.

sep/PA <-> RA/Dec conversions propagate the covariance with the Jacobian (first order), which is
accurate while the separation error is small compared with the separation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def _as_1d(value: ArrayLike, n: int | None = None, name: str = "value") -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if n is not None and arr.size == 1 and n != 1:
        arr = np.full(n, arr[0])
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} values, expected {n}")
    return arr


def seppa_to_radec(
    sep: ArrayLike,
    pa_deg: ArrayLike,
    sep_err: ArrayLike = 0.0,
    pa_err_deg: ArrayLike = 0.0,
    corr: ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sep [mas], PA [deg E of N]) with errors and their correlation -> (ra, dec, cov).

    ``ra = sep sin PA``, ``dec = sep cos PA``; ``cov`` has shape (n, 2, 2) in mas^2.
    """
    sep = _as_1d(sep, name="sep")
    n = sep.size
    pa = np.deg2rad(_as_1d(pa_deg, n, "pa"))
    s_sep = _as_1d(sep_err, n, "sep_err")
    s_pa = np.deg2rad(_as_1d(pa_err_deg, n, "pa_err"))
    rho = _as_1d(corr, n, "corr")
    ra, dec = sep * np.sin(pa), sep * np.cos(pa)
    # Jacobian d(ra, dec)/d(sep, pa)
    jac = np.empty((n, 2, 2))
    jac[:, 0, 0], jac[:, 0, 1] = np.sin(pa), sep * np.cos(pa)
    jac[:, 1, 0], jac[:, 1, 1] = np.cos(pa), -sep * np.sin(pa)
    cov_in = np.empty((n, 2, 2))
    cov_in[:, 0, 0], cov_in[:, 1, 1] = s_sep**2, s_pa**2
    cov_in[:, 0, 1] = cov_in[:, 1, 0] = rho * s_sep * s_pa
    return ra, dec, jac @ cov_in @ np.swapaxes(jac, 1, 2)


def radec_to_seppa(
    ra: ArrayLike, dec: ArrayLike, cov: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec) offsets [mas] with covariance (n, 2, 2) -> (sep, pa_deg, sep_err, pa_err_deg, corr)."""
    ra = _as_1d(ra, name="ra")
    dec = _as_1d(dec, ra.size, "dec")
    sep = np.hypot(ra, dec)
    pa = np.rad2deg(np.arctan2(ra, dec)) % 360.0
    if cov is None:
        zeros = np.zeros_like(sep)
        return sep, pa, zeros, zeros, zeros
    safe = np.where(sep > 0, sep, np.nan)
    # Jacobian d(sep, pa)/d(ra, dec)
    jac = np.empty((ra.size, 2, 2))
    jac[:, 0, 0], jac[:, 0, 1] = ra / safe, dec / safe
    jac[:, 1, 0], jac[:, 1, 1] = dec / safe**2, -ra / safe**2
    out = jac @ np.asarray(cov, dtype=float) @ np.swapaxes(jac, 1, 2)
    s_sep = np.sqrt(out[:, 0, 0])
    s_pa = np.sqrt(out[:, 1, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(s_sep * s_pa > 0, out[:, 0, 1] / (s_sep * s_pa), 0.0)
    return sep, pa, s_sep, np.rad2deg(s_pa), corr


def radec_covariance(ra_err: ArrayLike, dec_err: ArrayLike, corr: ArrayLike = 0.0) -> np.ndarray:
    """(n, 2, 2) covariance [mas^2] from RA/Dec errors [mas] and their correlation coefficient."""
    s_ra = _as_1d(ra_err, name="ra_err")
    n = s_ra.size
    s_dec = _as_1d(dec_err, n, "dec_err")
    rho = _as_1d(corr, n, "corr")
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = s_ra**2, s_dec**2
    cov[:, 0, 1] = cov[:, 1, 0] = rho * s_ra * s_dec
    return cov


@dataclass(frozen=True)
class RelativeAstrometry:
    """Offsets of one object from its host star at ``n`` epochs (see the module conventions).

    Attributes: ``name``; ``mjd`` (n,); ``ra``/``dec`` (n,) in mas; ``cov`` (n, 2, 2) in mas^2.
    Build it with :meth:`from_radec` or :meth:`from_seppa`; combine epochs given in both forms
    with :meth:`concatenate`.
    """

    name: str
    mjd: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    cov: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.mjd).size
        for label, arr, shape in (
            ("ra", self.ra, (n,)),
            ("dec", self.dec, (n,)),
            ("cov", self.cov, (n, 2, 2)),
        ):
            if np.shape(arr) != shape:
                raise ValueError(f"{self.name}: {label} has shape {np.shape(arr)}, expected {shape}")
        if not np.all(np.isfinite(self.mjd)) or not np.all(np.isfinite(self.ra + self.dec)):
            raise ValueError(f"{self.name}: epochs and offsets must be finite")
        var = self.cov[:, [0, 1], [0, 1]]
        if np.any(~np.isfinite(self.cov)) or np.any(var <= 0):
            raise ValueError(f"{self.name}: every epoch needs positive, finite errors")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_radec(
        cls,
        name: str,
        mjd: ArrayLike,
        ra: ArrayLike,
        dec: ArrayLike,
        ra_err: ArrayLike,
        dec_err: ArrayLike,
        corr: ArrayLike = 0.0,
    ) -> RelativeAstrometry:
        """From RA/Dec offsets [mas] and their errors [mas] (``corr``: their correlation)."""
        mjd = _as_1d(mjd, name="mjd")
        n = mjd.size
        return cls(
            name,
            mjd,
            _as_1d(ra, n, "ra"),
            _as_1d(dec, n, "dec"),
            radec_covariance(_as_1d(ra_err, n, "ra_err"), dec_err, corr),
        )

    @classmethod
    def from_seppa(
        cls,
        name: str,
        mjd: ArrayLike,
        sep: ArrayLike,
        pa_deg: ArrayLike,
        sep_err: ArrayLike,
        pa_err_deg: ArrayLike,
        corr: ArrayLike = 0.0,
    ) -> RelativeAstrometry:
        """From separations [mas] and position angles [deg E of N] with errors."""
        mjd = _as_1d(mjd, name="mjd")
        n = mjd.size
        ra, dec, cov = seppa_to_radec(_as_1d(sep, n, "sep"), pa_deg, sep_err, pa_err_deg, corr)
        return cls(name, mjd, ra, dec, cov)

    @classmethod
    def concatenate(cls, name: str, parts: Sequence[RelativeAstrometry]) -> RelativeAstrometry:
        """All epochs of ``parts`` as one object, sorted by epoch."""
        if not parts:
            raise ValueError(f"{name}: no epochs")
        joined = cls(
            name,
            np.concatenate([p.mjd for p in parts]),
            np.concatenate([p.ra for p in parts]),
            np.concatenate([p.dec for p in parts]),
            np.concatenate([p.cov for p in parts]),
        )
        return joined.sorted()

    # -- views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(np.asarray(self.mjd).size)

    def sorted(self) -> RelativeAstrometry:
        """The same epochs in time order (stable)."""
        order = np.argsort(self.mjd, kind="stable")
        return self.select(order)

    def select(self, index: ArrayLike) -> RelativeAstrometry:
        """The epochs at ``index`` (an integer array or a boolean mask)."""
        idx = np.asarray(index)
        return RelativeAstrometry(self.name, self.mjd[idx], self.ra[idx], self.dec[idx], self.cov[idx])

    @property
    def ra_err(self) -> np.ndarray:
        return np.sqrt(self.cov[:, 0, 0])

    @property
    def dec_err(self) -> np.ndarray:
        return np.sqrt(self.cov[:, 1, 1])

    @property
    def corr(self) -> np.ndarray:
        return self.cov[:, 0, 1] / (self.ra_err * self.dec_err)

    @property
    def baseline_yr(self) -> float:
        """Time between the first and the last epoch, in Julian years."""
        return float((np.max(self.mjd) - np.min(self.mjd)) / 365.25)

    def seppa(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(sep, pa_deg, sep_err, pa_err_deg, corr) of every epoch."""
        return radec_to_seppa(self.ra, self.dec, self.cov)

    def to_rows(self) -> list[dict[str, float | str]]:
        """One dict per epoch with both forms (mas, degrees) -- for JSON and tables."""
        sep, pa, s_sep, s_pa, _ = self.seppa()
        return [
            {
                "object": self.name,
                "mjd": float(self.mjd[i]),
                "ra_mas": float(self.ra[i]),
                "dec_mas": float(self.dec[i]),
                "ra_err_mas": float(self.ra_err[i]),
                "dec_err_mas": float(self.dec_err[i]),
                "radec_corr": float(self.corr[i]),
                "sep_mas": float(sep[i]),
                "sep_err_mas": float(s_sep[i]),
                "pa_deg": float(pa[i]),
                "pa_err_deg": float(s_pa[i]),
            }
            for i in range(len(self))
        ]
