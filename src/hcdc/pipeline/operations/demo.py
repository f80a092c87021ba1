"""The main job, end to end, on the embedded default (SQLite + local storage).

``run_demo(directory)`` builds a complete small data centre from files hcdc makes itself:

1. create the data centre (SQLite catalogue and file store in ``directory``);
2. simulate two nights of raw SPHERE/IRDIS files (a DBI then a CI sequence of 51 Eri centred on
   its transit, see :data:`DEMO_NIGHTS`, each with its calibrations; companions of known
   separation, position angle and contrast) into ``directory/raw/<night>``;
3. ingest them (identification, classification, metadata, datasets);
4. associate the calibrations of every science dataset;
5. queue one reduction job per complete dataset (Level 1 -> Level 2) and run them with a local
   worker, registering products with their provenance;
6. report: catalogue, datasets and associations, products and the detections next to the
   injected truth.

The Level 2 reduction is the standard ``irdis-l1-l2`` workflow with its defaults (annular PCA,
3 components, see :data:`hcdc.pipeline.workflows.irdis.IRDIS_LEVEL2_DEFAULTS` for the measurements
behind them).

With ``irdifs=True`` (``hcdc demo --irdifs``) the demo also simulates an IRDIFS night
(:data:`IRDIFS_NIGHT`: IRDIS DB_H23 and IFS YJ observing 51 Eri at once, one set of companions,
:func:`hcdc.instruments.sphere.irdifs.simulate_irdifs_night`), ingested as two datasets that the
same worker reduces with ``irdis-l1-l2`` and ``ifs-l1-l2`` (Level 1 -> 2, and Level 3 companion
spectra for IFS); the report's ``irdifs`` section lists each arm's products and detections next
to that night's truth. Off by default: the IFS reduction adds minutes.

Running it again on the same directory redoes nothing that is done: the simulated bytes are
identical (same seed), so ingest finds duplicates, and datasets that already have a job are not
queued again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcdc.archive.associations import associate_all, association_view
from hcdc.archive.db import Catalogue, init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset, File
from hcdc.archive.products import list_products, product_detail
from hcdc.instruments.sphere.irdifs import SimulatedIrdifsNight, simulate_irdifs_night
from hcdc.instruments.sphere.irdis.simulate import (
    SequenceSpec,
    SimulatedNight,
    band_labels,
    simulate_irdis_night,
)
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.worker import Worker, queue_datasets, ready_datasets

#: Scale of the simulated detector for the demo (see ``hcdc.instruments.sphere.irdis.simulate.SCALES``).
DEFAULT_SCALE = "medium"
DEFAULT_SEED = 2026

#: The demo's observing plan: one sequence per night, each centred on the transit of 51 Eri
#: (the simulator centres a night's first template on the transit). Angular differential imaging
#: needs field rotation: 51 Eri passes 22 deg from the zenith at Paranal and its parallactic
#: angle turns by ~35 deg in the hour around transit, ~36 deg/h at transit but only ~10 deg/h
#: two hours later. A CI sequence taken after an hour of DBI in the same night rotates by only
#: ~6 deg (measured: 6.5 deg), which smears a companion at 250 mas (20 px) over 0.7 FWHM: ADI
#: then subtracts it with the speckles. Hence a second night for CI. The DBI template takes 16
#: OBJECT files and the CI template 12, of 64 s DITs (1-1.5 h sequences, as in SPHERE surveys);
#: measured rotation: DBI 40.5 deg and CI 30.8 deg at the 'medium' scale (4 DITs per file),
#: DBI 31.3 deg and CI 23.5 deg at 'small' (3 DITs per file).
DEMO_NIGHTS: tuple[tuple[str, SequenceSpec], ...] = (
    ("2018-11-30", SequenceSpec("DB_H23", "DBI", 64.0, 16, 64.0, 4.0, "ND_2.0", "x")),
    ("2018-12-01", SequenceSpec("BB_H", "CI", 64.0, 12, 64.0, 8.0, "ND_3.5", "+")),
)

#: The IRDIFS night of ``hcdc demo --irdifs`` (its own night: IRDIS and IFS at once).
IRDIFS_NIGHT = "2018-12-02"
#: IFS detector scale of the IRDIFS night (1024^2: a Level 1 in about a minute).
IRDIFS_IFS_SCALE = "small"

StageCallback = Callable[[str], None]
JobProgress = Callable[[int, float, str], None]


@dataclass
class DemoReport:
    """What the main job built (JSON-ready through :meth:`as_dict`)."""

    root: Path
    database: str
    raw_dir: Path
    files_by_class: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    ingest: dict[str, Any] = field(default_factory=dict)
    associations: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)
    #: ``--irdifs``: one entry per arm (dataset, mode, products, detections matched to the
    #: IRDIFS night's truth) and that truth; empty without it.
    irdifs: list[dict[str, Any]] = field(default_factory=list)
    irdifs_truth: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "database": self.database,
            "raw_dir": str(self.raw_dir),
            "files_by_class": self.files_by_class,
            "quarantined": self.quarantined,
            "ingest": self.ingest,
            "associations": self.associations,
            "jobs": self.jobs,
            "products": self.products,
            "detections": self.detections,
            "truth": self.truth,
            "irdifs": self.irdifs,
            "irdifs_truth": self.irdifs_truth,
        }


def _angle_difference(a: float, b: float) -> float:
    """Smallest absolute difference between two angles in degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def match_detections(
    detections: list[dict[str, Any]], truth: list[dict[str, Any]], max_offset_mas: float = 30.0
) -> list[dict[str, Any]]:
    """Pair each detection with the nearest injected companion (on the sky) within ``max_offset_mas``.

    Returns the detections with ``true_separation_mas``, ``true_pa_deg``, ``true_contrast`` and
    ``offset_mas`` added, or None for those that match nothing (a false positive or a real
    feature of the simulation such as a bright speckle). ``true_contrast`` is the companion's
    mean contrast over the bands of the detection's filter combination (its ``filter`` key, e.g.
    ``DB_H23`` -> H2 and H3: the final image is the mean of the per-band images) or over every
    simulated band when the detection has no ``filter``.
    """
    matched = []
    for det in detections:
        best, best_offset = None, math.inf
        for comp in truth:
            sep1, pa1 = det["separation_mas"], math.radians(det["pa_deg"])
            sep2, pa2 = comp["separation_mas"], math.radians(comp["pa_deg"])
            offset = math.sqrt(max(sep1**2 + sep2**2 - 2 * sep1 * sep2 * math.cos(pa1 - pa2), 0.0))
            if offset < best_offset:
                best, best_offset = comp, offset
        row = dict(det)
        if best is not None and best_offset <= max_offset_mas:
            bands = band_labels(det["filter"]) if det.get("filter") else tuple(best["contrast"])
            contrasts = [best["contrast"][b] for b in bands if b in best["contrast"]]
            contrasts = contrasts or list(best["contrast"].values())
            row["true_separation_mas"] = best["separation_mas"]
            row["true_pa_deg"] = best["pa_deg"]
            row["true_contrast"] = sum(contrasts) / len(contrasts)
            row["offset_mas"] = round(best_offset, 2)
        else:
            row["true_separation_mas"] = row["true_pa_deg"] = row["true_contrast"] = None
            row["offset_mas"] = None
        matched.append(row)
    return matched


def _irdifs_entry(
    arms: dict[int, dict[str, Any]], dataset: Any, detail: dict[str, Any], truth: list[dict[str, Any]]
) -> None:
    """Add one product of the IRDIFS night to its arm's entry; Level 2 detections are matched to
    the night's truth with the arm's contrast (IRDIS: mean of H2 and H3; IFS: mean over YJ)."""
    entry = arms.setdefault(
        dataset.id,
        {
            "dataset_id": dataset.id,
            "arm": dataset.arm,
            "mode": dataset.mode,
            "products": [],
            "detections": [],
        },
    )
    entry["products"].append(
        {
            "id": detail.get("id"),
            "level": detail.get("level"),
            "recipe": detail.get("recipe"),  # "name version"
            "workflow": detail.get("workflow"),
            "workflow_version": ((detail.get("provenance") or {}).get("workflow") or " ").split(" ")[-1],
        }
    )
    detections = ((detail.get("summary") or {}).get("detections")) or []
    if not detections or detail.get("level") != 2:
        return
    bands = ("YJ",) if dataset.arm == "IFS" else ("H2", "H3")
    arm_truth = [{**row, "contrast": {b: row["contrast"][b] for b in bands}} for row in truth]
    entry["detections"] = match_detections([dict(d) for d in detections], arm_truth)


def _files_by_class(catalogue: Catalogue) -> dict[str, int]:
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(File.type).where(File.is_current)).scalars().all()
    return dict(sorted(Counter(t or "(none)" for t in rows).items()))


def _science_dataset_ids(catalogue: Catalogue) -> list[int]:
    with catalogue.engine.connect() as conn:
        return list(conn.scalars(select(Dataset.id).order_by(Dataset.id)))


def run_demo(
    directory: str | Path,
    *,
    seed: int = DEFAULT_SEED,
    scale: str = DEFAULT_SCALE,
    processes: int = 1,
    on_stage: StageCallback | None = None,
    on_job_progress: JobProgress | None = None,
    irdifs: bool = False,
    standard_nights: bool = True,
    database_url: str | None = None,
) -> DemoReport:
    """Run the main job in ``directory`` (created if needed); see the module docstring.

    ``irdifs``: also the IRDIFS night; ``standard_nights=False`` leaves out the two IRDIS nights
    (with ``irdifs``: the IRDIFS night alone, as its test does); ``database_url``: a catalogue
    other than the embedded SQLite one (e.g. PostgreSQL)."""
    if not (standard_nights or irdifs):
        raise ValueError("nothing to simulate: standard_nights and irdifs are both off")
    stage = on_stage or (lambda _text: None)
    root = Path(directory).resolve()
    raw_dir = root / "raw"

    stage("creating the data centre")
    catalogue = init_data_centre(root, database_url=database_url)
    try:
        nights: list[SimulatedNight] = []
        for date, sequence in DEMO_NIGHTS if standard_nights else ():
            stage(
                f"simulating the night of {date}: raw IRDIS {sequence.mode} {sequence.filter} "
                f"files ({scale} scale, seed {seed})"
            )
            # Same seed every night: same detector (bad pixels, flat) and same companions.
            night = simulate_irdis_night(
                raw_dir / date, seed=seed, scale=scale, sequences=(sequence,), night=date
            )
            nights.append(night)
        irdifs_night: SimulatedIrdifsNight | None = None
        if irdifs:
            stage(
                f"simulating the IRDIFS night of {IRDIFS_NIGHT}: raw IRDIS DB_H23 ({scale}) and "
                f"IFS YJ ({IRDIFS_IFS_SCALE}) files, seed {seed}"
            )
            irdifs_night = simulate_irdifs_night(
                raw_dir / f"irdifs-{IRDIFS_NIGHT}",
                seed=seed,
                night=IRDIFS_NIGHT,
                irdis_scale=scale,
                ifs_scale=IRDIFS_IFS_SCALE,
            )

        stage("ingesting the raw files")
        summary = ingest(catalogue, [raw_dir])

        stage("associating calibrations")
        associate_all(catalogue.engine)
        with catalogue.engine.connect() as conn:
            associations = [association_view(conn, d) for d in _science_dataset_ids(catalogue)]

        stage("reducing complete datasets (Level 1 -> Level 2)")
        ready = ready_datasets(catalogue)
        new_jobs = queue_datasets(catalogue, ready) if ready else []
        if new_jobs:
            with Worker(catalogue, processes=processes, on_progress=on_job_progress) as worker:
                worker.run(once=True, ids=new_jobs)

        report = DemoReport(
            root=root,
            database=catalogue.engine.url.render_as_string(hide_password=True),
            raw_dir=raw_dir,
            files_by_class=_files_by_class(catalogue),
            quarantined=summary.quarantined,
            ingest=summary.as_dict(),
            associations=associations,
            truth=nights[0].companion_truth() if nights else [],
            irdifs_truth=irdifs_night.companion_truth() if irdifs_night is not None else [],
        )
        report.jobs = [j.as_dict() for j in jq.list_jobs(catalogue.engine, limit=None)]
        # The filter combination of each dataset, from the night it was observed (one per night).
        filters = {date: sequence.filter for date, sequence in DEMO_NIGHTS}
        arms: dict[int, dict[str, Any]] = {}
        with catalogue.engine.connect() as conn:
            datasets = {
                r.id: r for r in conn.execute(select(Dataset.id, Dataset.night, Dataset.arm, Dataset.mode))
            }
            nights = {i: r.night for i, r in datasets.items()}
            for row in sorted(list_products(conn, limit=None), key=lambda r: r["id"]):
                detail = product_detail(conn, row["id"], catalogue.storage_root)
                report.products.append(detail)
                dataset_id = (detail or {}).get("dataset_id")
                night_of = nights.get(dataset_id)
                if irdifs_night is not None and night_of is not None and night_of.isoformat() == IRDIFS_NIGHT:
                    _irdifs_entry(arms, datasets[dataset_id], detail or {}, report.irdifs_truth)
                    continue
                context = {
                    "product_id": row["id"],
                    "dataset_id": (detail or {}).get("dataset_id"),
                    "filter": filters.get(night_of.isoformat()) if night_of else None,
                }
                for det in ((detail or {}).get("summary") or {}).get("detections") or []:
                    report.detections.append({**context, **det})
        report.detections = match_detections(report.detections, report.truth)
        report.irdifs = [arms[k] for k in sorted(arms)]
        return report
    finally:
        catalogue.close()
