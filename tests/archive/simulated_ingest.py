"""Ingest a simulated SPHERE night and read back how each file was classified (shared by the
simulator ingest tests: IRDIS DPI, IFS)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset, File

#: file class of the DPR TYPEs every SPHERE arm shares (arm-specific ones are added by each test)
SPHERE_CLASS_BY_DPR_TYPE = {
    "OBJECT": "SCIENCE",
    "OBJECT,CENTER": "CENTER",
    "OBJECT,FLUX": "FLUX",
    "SKY": "SKY",
    "DARK": "DARK",
    "DARK,BACKGROUND": "BACKGROUND",
}


def ingest_simulated(
    catalogue, paths: Iterable[Path]
) -> tuple[dict[str, tuple[int, str, str, str]], list[int]]:
    """Ingest ``paths`` (none may be quarantined); return {file name: (id, class, mode, arm)} and the
    dataset ids."""
    paths = list(paths)
    summary = ingest(catalogue, paths, workers=1)
    assert (summary.ingested, summary.quarantined) == (len(paths), 0)
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(File.id, File.path, File.file_class, File.mode, File.arm)).all()
        dataset_ids = list(conn.scalars(select(Dataset.id)))
    by_name = {Path(path).name: (file_id, cls, mode, arm) for file_id, path, cls, mode, arm in rows}
    return by_name, dataset_ids
