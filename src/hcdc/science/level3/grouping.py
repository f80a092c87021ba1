"""Grouping the detections of one target at several epochs into candidates.

A detection joins the candidate whose position it matches, predicted from that candidate's latest
detection under either hypothesis of the motion test:

* co-moving: same offset, within the measurement errors plus the orbital motion the host allows
  (per-axis rms circular speed at the detection's separation times the time elapsed, see
  :func:`hcdc.science.level3.motion_test.orbital_scale_at`);
* stationary background: the offset moved by minus the host's displacement (proper motion and
  parallax), within the errors plus a background star's own proper motion (the largest rms of
  ``MotionTestSettings.background_pm_sigmas``) times the time elapsed.

"Match" means a Mahalanobis distance of at most ``n_sigma`` under the better of the two; among
several matching candidates the closest wins, and an unmatched detection starts a new candidate.
Detections are taken in time order (several detections of one candidate at one epoch, e.g. from
two reductions or two filters, all join it). Without a host star only the co-moving prediction
is used, with ``radius_mas`` as the orbital allowance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from hcdc.science.level3.astrometry import RelativeAstrometry, radec_covariance
from hcdc.science.level3.background import DAYS_PER_YEAR, HostStar, background_track_error, host_displacement
from hcdc.science.level3.motion_test import MotionTestSettings, orbital_scale_at


@dataclass(frozen=True)
class Detection:
    """One detection: the caller's ``id``, epoch [MJD], offsets and errors [mas] (RA east-positive)."""

    id: Hashable
    mjd: float
    ra: float
    dec: float
    ra_err: float
    dec_err: float
    corr: float = 0.0

    def cov(self) -> np.ndarray:
        return radec_covariance([self.ra_err], [self.dec_err], [self.corr])[0]


@dataclass(frozen=True)
class Candidate:
    """Detections grouped as one physical object: ``label`` (cc1, cc2, ... by first epoch, then
    separation), the member ids in time order, and their astrometry (named ``label``)."""

    label: str
    detection_ids: tuple[Hashable, ...]
    astrometry: RelativeAstrometry


def _distance2(delta: np.ndarray, cov: np.ndarray) -> float:
    return float(delta @ np.linalg.solve(cov, delta))


def match_distance(
    previous: Detection,
    new: Detection,
    host: HostStar | None,
    settings: MotionTestSettings,
    radius_mas: float,
) -> float:
    """Smallest Mahalanobis distance of ``new`` from the positions predicted from ``previous``."""
    dt_yr = abs(new.mjd - previous.mjd) / DAYS_PER_YEAR
    base = previous.cov() + new.cov()
    delta = np.array([new.ra - previous.ra, new.dec - previous.dec])
    if host is None:
        allow = radius_mas
    else:
        mass = host.mass_msun if host.mass_msun is not None else settings.host_mass_msun
        sep = math.hypot(previous.ra, previous.dec)
        allow = max(radius_mas, orbital_scale_at(sep, host.parallax, mass).speed_mas_yr * dt_yr)
    best = _distance2(delta, base + allow**2 * np.eye(2))
    if host is not None:
        d_ra, d_dec = host_displacement(host, [new.mjd], previous.mjd)
        delta_bg = delta + np.array([d_ra[0], d_dec[0]])
        cov_bg = base + background_track_error(host, previous.mjd, [new.mjd])[0]
        cov_bg += ((max(settings.background_pm_sigmas) * dt_yr) ** 2 + radius_mas**2) * np.eye(2)
        best = min(best, _distance2(delta_bg, cov_bg))
    return math.sqrt(best)


def group_detections(
    detections: Sequence[Detection],
    host: HostStar | None = None,
    *,
    n_sigma: float = 5.0,
    radius_mas: float = 5.0,
    settings: MotionTestSettings | None = None,
) -> list[Candidate]:
    """Group ``detections`` (any order) of one target into candidates (module docstring).

    ``radius_mas``: extra tolerance [mas] added to both predictions (systematic errors between
    instruments); ``n_sigma``: the match threshold in Mahalanobis distance.
    """
    settings = settings or MotionTestSettings()
    ids = [d.id for d in detections]
    if len(set(ids)) != len(ids):
        raise ValueError("detection ids must be unique")
    groups: list[list[Detection]] = []
    for det in sorted(detections, key=lambda d: (d.mjd, math.hypot(d.ra, d.dec))):
        scores = [match_distance(group[-1], det, host, settings, radius_mas) for group in groups]
        if scores and min(scores) <= n_sigma:
            groups[int(np.argmin(scores))].append(det)
        else:
            groups.append([det])
    groups.sort(key=lambda g: (g[0].mjd, math.hypot(g[0].ra, g[0].dec)))
    candidates = []
    for i, group in enumerate(groups, start=1):
        label = f"cc{i}"
        astro = RelativeAstrometry.from_radec(
            label,
            [d.mjd for d in group],
            [d.ra for d in group],
            [d.dec for d in group],
            [d.ra_err for d in group],
            [d.dec_err for d in group],
            [d.corr for d in group],
        )
        candidates.append(Candidate(label, tuple(d.id for d in group), astro))
    return candidates
