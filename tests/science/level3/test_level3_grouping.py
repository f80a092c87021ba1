"""Grouping detections into candidates: a simulated target with a bound companion, two background
stars (one with its own proper motion) and a duplicate detection at one epoch."""

from __future__ import annotations

import numpy as np

from hcdc.science.level3.background import HostStar
from hcdc.science.level3.grouping import Detection, group_detections
from hcdc.science.level3.simulate import background_offsets, keplerian_offsets

HOST = HostStar(
    346.87016480276117, 21.134030591019936, 108.28364808923558, -50.04016524335864, 24.461952, mass_msun=1.5
)


def test_candidates_follow_their_predicted_positions() -> None:
    rng = np.random.default_rng(8)
    mjd = 57000.0 + np.array([0.0, 300.0, 700.0, 1500.0])
    truth = {
        "b": keplerian_offsets(mjd, a_au=40.0, parallax_mas=HOST.parallax, mass_msun=1.5, inc_deg=30.0),
        "bg1": background_offsets(HOST, mjd, 700.0, 800.0),
        "bg2": background_offsets(HOST, mjd, 1100.0, 500.0, pmra=8.0, pmdec=-5.0),
    }
    detections = []
    for name, (ra, dec) in truth.items():
        for i in range(len(mjd)):
            noise = rng.normal(0.0, 3.0, 2)
            detections.append(Detection(f"{name}-{i}", mjd[i], ra[i] + noise[0], dec[i] + noise[1], 3.0, 3.0))
    # a second reduction of the same epoch sees the companion again
    detections.append(Detection("b-2bis", mjd[2], truth["b"][0][2] + 1.0, truth["b"][1][2] - 1.0, 3.0, 3.0))
    rng.shuffle(detections)
    candidates = group_detections(detections, HOST)
    groups = sorted(sorted(c.detection_ids) for c in candidates)
    assert groups == sorted(
        [
            sorted(["b-0", "b-1", "b-2", "b-2bis", "b-3"]),
            [f"bg1-{i}" for i in range(4)],
            [f"bg2-{i}" for i in range(4)],
        ]
    )
    assert [c.label for c in candidates] == ["cc1", "cc2", "cc3"]
    assert all(len(c.astrometry) == len(c.detection_ids) for c in candidates)


def test_without_host_only_the_radius_links() -> None:
    d = [
        Detection(1, 57000.0, 100.0, 100.0, 1.0, 1.0),
        Detection(2, 57100.0, 103.0, 100.0, 1.0, 1.0),
        Detection(3, 57100.0, 300.0, 100.0, 1.0, 1.0),
    ]
    candidates = group_detections(d, None, radius_mas=5.0)
    assert sorted(c.detection_ids for c in candidates) == [(1, 2), (3,)]
