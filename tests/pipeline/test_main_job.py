"""The main job end to end (issue 5): simulate -> ingest -> associate -> L1 -> L2 -> report.

A scaled-down ``hcdc demo`` ('small' detector: 128 x 256 px raw frames, 3 DITs per file) must
find every injected companion where it was put and at its contrast, with at most one detection
that matches nothing (the measured false-alarm rate of the speckle-limited S/N map, see
MAX_FALSE_DETECTIONS), and a second run on the same directory must add nothing.

Truth: the simulator's default companions (250 mas PA 60 deg, contrast 5e-4 in H2 / 3e-4 in H3
/ 4e-4 in H; 480 mas PA 210 deg, 1.2e-4 / 0.8e-4 / 1e-4), observed in a DB_H23 DBI and a BB_H
CI sequence (31 and 24 deg of field rotation). With speckles as unstable as on sky (tuned on the
real NACO beta Pic cube, docs/simulation.md) both stay above the detection limit (5-sigma
contrast 1.4e-4-3.1e-4 at 0.25" and 3.3e-5-8.6e-5 at 0.5"), so every one must come out of both
datasets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from hcdc.archive.db import open_data_centre
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import Job, Product
from hcdc.instruments.sphere.irdis.simulate import DEFAULT_COMPANIONS, band_labels
from hcdc.pipeline.operations.demo import DEMO_NIGHTS, DemoReport, run_demo

#: Tolerances. Measured (seed 2026, 'small', annular PCA with 3 components, the IRDIS default,
#: realistic speckles; benchmarks/demo_level2_algorithms.py): offsets <= 0.5 mas in separation,
#: <= 0.43 deg in PA, contrast within 11.2 % of the truth, S/N 8.3-14.2 (the 250 mas companion in
#: BB_H is the closest to the S/N limit). With the former, far too stable speckles: 0.5 mas,
#: 0.03 deg, 10 %, S/N 20.4-26.5 (tolerances then 4 mas, 0.5 deg, 15 %, S/N >= 10).
SEPARATION_TOL_MAS = 4.0  # a third of a 12.25 mas pixel
PA_TOL_DEG = 0.9  # 0.9 deg = 4 mas at 250 mas, as in separation
#: Contrast: within CONTRAST_NSIGMA / S/N of the truth (relative). The photometric noise of a
#: detection is that of its 1-FWHM aperture, 1/S/N of its flux; the CONTRAST_ERR of
#: l2-postprocess <= 1.3 (the fakes' throughput spread) left it out, 1.4's holds it
#: (docs/postprocessing.md, "What a detection's CONTRAST_ERR holds"). Measured with the
#: physically turning sky (annular PCA 3,
#: 'small', seeds 2026-2029, 16 companion detections): contrast errors -34 % to +16 % (rms 12 %;
#: a fixed 15 % failed one detection in every seed), error x S/N rms 1.27, largest |error| x S/N 3.0.
CONTRAST_NSIGMA = 3.5
MIN_SNR = 7.0  # above the 5-sigma detection criterion; measured 8.3-14.2 (see above)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, DemoReport]:
    root = tmp_path_factory.mktemp("demo")
    return root, run_demo(root, scale="small", seed=2026, processes=0)


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_every_dataset_is_reduced_to_level2(demo):
    _, report = demo
    assert [j["state"] for j in report.jobs] == ["done"] * len(DEMO_NIGHTS)
    assert all(not v["missing"] for v in report.associations)
    level2 = [p for p in report.products if p["level"] == 2]
    assert len(level2) == len(DEMO_NIGHTS)
    assert all(p["summary"]["algorithm"] == "pca_annular" and p["previews"] for p in level2)
    assert {d["filter"] for d in report.detections} == {spec.filter for _, spec in DEMO_NIGHTS}


@pytest.mark.parametrize("filter_comb", [spec.filter for _, spec in DEMO_NIGHTS])
@pytest.mark.parametrize("companion", DEFAULT_COMPANIONS, ids=lambda c: f"{c.separation_mas:.0f}mas")
def test_injected_companions_come_out_where_they_were_put(demo, filter_comb, companion):
    _, report = demo
    found = [
        d
        for d in report.detections
        if d["filter"] == filter_comb and d["true_separation_mas"] == companion.separation_mas
    ]
    assert len(found) == 1, found  # one detection per companion (no split or duplicate peak)
    (det,) = found
    bands = band_labels(filter_comb)
    true_contrast = sum(companion.contrast_in(b) for b in bands) / len(bands)
    assert det["true_contrast"] == pytest.approx(true_contrast)
    assert det["separation_mas"] == pytest.approx(companion.separation_mas, abs=SEPARATION_TOL_MAS)
    assert _angle_diff(det["pa_deg"], companion.pa_deg) <= PA_TOL_DEG
    assert det["contrast"] == pytest.approx(true_contrast, rel=CONTRAST_NSIGMA / det["snr"])
    assert det["snr"] >= MIN_SNR


#: False detections (S/N peaks above the 5-sigma-equivalent Student threshold that match no injected
#: companion) tolerated over the demo's datasets. Not zero because the speckle-limited S/N map has
#: heavier tails than the Student t law the threshold assumes (independent Gaussian resolution
#: elements): on 80 speckle-only realisations of the BB_H sequence (the night simulator's
#: speckle model and times/angles, no companion, no detector; annular PCA 3) 5 images had a
#: false detection in the physical rotation sense and 3 in the old one (S/N 5.6-9.2; ~5 % per
#: image, against ~3e-4 for ~1100 resolution elements at FPF 2.87e-7; benchmarks/
#: speckle_false_alarms.py). Seed 2026 has one in BB_H (580 mas, PA 169 deg, S/N 6.5): it comes
#: from the speckle field alone (same speckle seed with other noise, detector and centring: 582
#: mas, 169.0 deg, S/N 6.5; speckles alone without photon noise: 47.3 px, 169.2 deg, S/N 5.9);
#: seeds 2027-2029 have none (docs/main_job.md).
MAX_FALSE_DETECTIONS = 1


def test_no_detection_without_an_injected_companion(demo):
    _, report = demo
    assert report.detections
    unmatched = [d for d in report.detections if d["true_separation_mas"] is None]
    assert len(unmatched) <= MAX_FALSE_DETECTIONS, unmatched
    for det in unmatched:  # a speckle residual, far from both companions, not a split companion
        assert det["snr"] < 10.0  # speckle-only false detections measured at S/N 5.6-9.2
        for companion in DEFAULT_COMPANIONS:
            assert abs(det["separation_mas"] - companion.separation_mas) > 50.0


def _state(root: Path) -> tuple[int, int, int, list[str]]:
    """(file rows, job rows, product rows, files under the storage folder) of a data centre."""
    dc = open_data_centre(root)
    try:
        with dc.engine.connect() as conn:
            counts = tuple(
                conn.scalar(select(func.count()).select_from(model)) for model in (File, Job, Product)
            )
    finally:
        dc.close()
    stored = sorted(str(p.relative_to(root)) for p in (root / "storage").rglob("*") if p.is_file())
    return (*counts, stored)  # type: ignore[return-value]


def test_second_run_adds_nothing(demo):
    root, first = demo
    before = _state(root)
    assert before[:3] > (0, 0, 0)
    second = run_demo(root, scale="small", seed=2026, processes=0)
    assert _state(root) == before
    assert [j["id"] for j in second.jobs] == [j["id"] for j in first.jobs]
    assert [(p["id"], p["version"]) for p in second.products] == [
        (p["id"], p["version"]) for p in first.products
    ]
    assert second.ingest["ingested"] == 0 and second.ingest["new_versions"] == 0
    assert second.detections == first.detections


def test_level2_products_are_on_the_sky_with_a_celestial_wcs(demo):
    """Level 1 writes its angle convention and pointing; Level 2 reads them (issue 8): PAs east of
    north, and a celestial WCS that puts each detection at its separation and PA from 51 Eri."""
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    _, report = demo
    for product in (p for p in report.products if p["level"] == 2):
        summary = product["summary"]
        assert summary["pa_reference"] == "sky" and summary["orientation"]["known"]
        assert summary["warnings"] == []
        fits_path = next(f["path"] for f in product["files"] if str(f["path"]).endswith(".fits"))
        header = fits.getheader(fits_path, "IMAGE")
        assert header["ORIENT"] == "NORTH_UP_EAST_LEFT" and header["CTYPE1"] == "RA---TAN"
        wcs = WCS(header)
        star = SkyCoord(header["CRVAL1"], header["CRVAL2"], unit="deg")
        assert star.separation(SkyCoord(69.40, -2.47, unit="deg")).deg < 0.1  # 51 Eri
        for det in summary["detections"]:
            where = wcs.pixel_to_world(det["x"], det["y"])
            assert star.position_angle(where).deg == pytest.approx(det["pa_deg"], abs=0.01)
            assert star.separation(where).to_value("mas") == pytest.approx(det["separation_mas"], rel=1e-3)
