"""Target Data Base rows in the web tests' access world (tests/web/world.py).

* :func:`add_product_candidates`: every object's Level 2 product validated (so sent to the TDB,
  one reduction per product, rule R15 follows the product) and its detection put by an admin in a
  candidate of its own, labelled after the object: the candidate is visible exactly when the
  product is.
* :func:`add_51eri_b`: the real 51 Eri b astrometry (De Rosa et al. 2020, 14 epochs, NIRC2 and
  GPI) on a second target with its host's Gaia DR3 astrometry, with the real J and H photometry of
  species on two epochs; the last ``survey_epochs`` epochs are survey data of the group ``shine``
  until ``release``. Grouped automatically: one candidate, bound.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcdc.archive import accounts, targets
from hcdc.archive.access import local_operator
from hcdc.archive.exchange import tdb_json
from hcdc.archive.tdb import MJD_TO_JD, assign_detection, group_candidates
from hcdc.archive.tdb_models import Candidate, Detection, Reduction

from .world import World

#: Gaia DR3 astrometry of 51 Eri (shared/data/level3/hosts/hosts.csv)
ERI51 = {
    "ra_deg": 69.40074849308137,
    "dec_deg": -2.473833383625505,
    "pmra_masyr": 44.04884090373149,
    "pmdec_masyr": -64.02842203088811,
    "parallax_mas": 33.4390,
    "parallax_err_mas": 0.0777,
    "spectral_type": "F0IV",
}
#: 51 Eri b's MKO J and H (species companion_data.json, in shared/data/level3/cmd)
ERI51B_PHOTOMETRY = {"J": (19.04, 0.4), "H": (18.99, 0.21)}
NAME = "51 Eri B-host"  # a name of its own: the access world's products are of "51 Eri"


def detection_uid(product_id: int) -> str:
    """The uid of the first detection of a product's TDB reduction (a marker of the product)."""
    return f"hcdc:product/{product_id}/detection/1"


def add_product_candidates(world: World) -> dict[str, int]:
    """Validate every object's product and group its detection alone; {label: candidate id}."""
    out = {}
    with world.catalogue.engine.begin() as conn:
        for ids in world.ids.values():
            accounts.review_product(conn, local_operator(), ids["product"], "validated")
        for label, ids in world.ids.items():
            detection = conn.scalar(
                select(Detection.id).where(Detection.uid == detection_uid(ids["product"]))
            )
            assert detection is not None, f"product of {label} has no TDB detection"
            out[label] = assign_detection(conn, detection, f"c-{label}")
            ids["candidate"] = out[label]
            ids["target"] = conn.scalar(select(Candidate.target_id).where(Candidate.id == out[label]))
    return out


def add_51eri_b(
    world: World, shared_data: Path, survey_epochs: int = 4, release: dt.datetime = dt.datetime(2028, 1, 1)
) -> dict[str, Any]:
    """Import 51 Eri b (see the module docstring); {"target": id, "candidate": id, "epochs": n}."""
    from hcdc.science.level3.astrometry import RelativeAstrometry

    path = shared_data / "level3/bound/51eri_b_derosa2020_table2.csv"
    rows = list(csv.DictReader(path.open()))
    observations = []
    for n, row in enumerate(rows):
        one = RelativeAstrometry.from_seppa(
            "b", [float(row["epoch_mjd"])], [float(row["sep_mas"])], [float(row["pa_deg"])],
            [float(row["sep_err_mas"])], [float(row["pa_err_deg"])],
        )  # fmt: skip
        detection = {
            "uid": f"derosa:{n}",
            "separation_mas": float(row["sep_mas"]),
            "separation_err_mas": float(row["sep_err_mas"]),
            "pa_deg": float(row["pa_deg"]),
            "pa_err_deg": float(row["pa_err_deg"]),
            "dra_mas": float(one.ra[0]),
            "ddec_mas": float(one.dec[0]),
            "dra_err_mas": float(one.cov[0, 0, 0] ** 0.5),
            "ddec_err_mas": float(one.cov[0, 1, 1] ** 0.5),
            "contrast": 1.5e-6,
        }
        band = {0: "J", 1: "H"}.get(n)  # two epochs carry the photometry
        if band is not None:
            detection.update(
                filter=band, magnitude=ERI51B_PHOTOMETRY[band][0], magnitude_err=ERI51B_PHOTOMETRY[band][1]
            )
        survey = n >= len(rows) - survey_epochs
        observations.append(
            {
                "uid": f"derosa:{n}:obs",
                "date_jd": float(row["epoch_mjd"]) + MJD_TO_JD,
                "instrument": row["instrument"],
                "filter": row["filter"],
                "survey": "shine" if survey else None,
                "release_date": release.isoformat() if survey else None,
                "reductions": [{"uid": f"derosa:{n}:red", "validated": True, "detections": [detection]}],
            }
        )
    data = {
        "format": "hcdc-tdb",
        "version": 1,
        "targets": [
            {"name": NAME, "aliases": ["51 Eri b host (test)"], **ERI51, "observations": observations}
        ],
    }
    with world.catalogue.engine.begin() as conn:
        tdb_json.import_tdb(conn, data)
        tid = targets.find_target(conn, NAME)
        group_candidates(conn, tid)
        (candidate,) = conn.scalars(select(Candidate.id).where(Candidate.target_id == tid)).all()
        assert conn.scalar(select(Candidate.status).where(Candidate.id == candidate)) == "bound"
        reductions = conn.scalar(select(Reduction.id).where(Reduction.uid == "derosa:0:red"))
    return {"target": tid, "candidate": candidate, "epochs": len(rows), "reduction": reductions}


__all__ = ["ERI51", "NAME", "add_51eri_b", "add_product_candidates", "detection_uid"]
