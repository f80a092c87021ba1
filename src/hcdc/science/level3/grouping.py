"""Grouping the detections of one target at several epochs into candidates.

A detection joins the candidate whose position it matches, predicted from that candidate's latest
detection under either hypothesis of the motion test:

* co-moving: same offset, within the measurement errors plus the orbital motion the host allows
  (per-axis rms circular speed at the detection's separation times the time elapsed, see
  :func:`hcdc.science.level3.motion_test.orbital_scale_at`);
* stationary background: the offset moved by minus the host's displacement (proper motion and
  parallax), within the errors plus a background star's own proper motion (the largest rms of
  ``MotionTestSettings.background_pm_sigmas``) times the time elapsed.

"Match" means a Mahalanobis distance of at most ``n_sigma`` under the better of the two. Epochs
are taken in time order and paired with the candidates one to one by the smallest total distance;
several detections of one candidate at one epoch (two reductions, two filters) all join it; an
unmatched detection starts a new candidate. Without a host star only the co-moving prediction is
used, with ``radius_mas`` as the orbital allowance.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

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


def _epochs(detections: Sequence[Detection], same_epoch_days: float) -> list[list[Detection]]:
    """Detections in time order, cut into epochs (a new epoch starts more than
    ``same_epoch_days`` after the first detection of the current one)."""
    epochs: list[list[Detection]] = []
    for det in sorted(detections, key=lambda d: (d.mjd, math.hypot(d.ra, d.dec))):
        if epochs and det.mjd - epochs[-1][0].mjd <= same_epoch_days:
            epochs[-1].append(det)
        else:
            epochs.append([det])
    return epochs


def group_detections(
    detections: Sequence[Detection],
    host: HostStar | None = None,
    *,
    n_sigma: float = 5.0,
    radius_mas: float = 5.0,
    same_epoch_days: float = 1.0,
    settings: MotionTestSettings | None = None,
) -> list[Candidate]:
    """Group ``detections`` (any order) of one target into candidates (module docstring).

    Epoch by epoch, detections and existing candidates are paired one to one by the smallest
    total distance (Hungarian algorithm); a further detection of the same epoch joins a candidate
    that it matches and whose detection of this epoch it coincides with (a second reduction or
    filter); the rest start new candidates. ``radius_mas``: extra tolerance [mas] for systematic
    errors between instruments; ``n_sigma``: the match threshold (Mahalanobis distance);
    ``same_epoch_days``: detections this close in time belong to one epoch.
    """
    settings = settings or MotionTestSettings()
    ids = [d.id for d in detections]
    if len(set(ids)) != len(ids):
        raise ValueError("detection ids must be unique")
    groups: list[list[Detection]] = []
    for epoch in _epochs(detections, same_epoch_days):
        previous = [group[-1] for group in groups]  # each candidate's latest detection before this epoch
        joined: dict[int, Detection] = {}
        unmatched = list(range(len(epoch)))
        if previous:
            cost = np.array(
                [[match_distance(p, d, host, settings, radius_mas) for d in epoch] for p in previous]
            )
            rows, cols = linear_sum_assignment(np.where(cost <= n_sigma, cost, 1e6))
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= n_sigma:
                    joined[int(r)] = epoch[c]
                    unmatched.remove(int(c))
            for c in list(unmatched):
                for r, det in joined.items():
                    same = match_distance(det, epoch[c], None, settings, radius_mas) <= n_sigma
                    if same and cost[r, c] <= n_sigma:
                        groups[r].append(epoch[c])
                        unmatched.remove(c)
                        break
        for r, det in joined.items():
            groups[r].append(det)
        groups.extend([epoch[c]] for c in unmatched)
    for group in groups:
        group.sort(key=lambda d: d.mjd)
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
