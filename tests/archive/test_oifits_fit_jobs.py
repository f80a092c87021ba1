"""Bulk homogeneous model fits on the job system (SQLite and PostgreSQL): ``hcdc oi fit
--collection`` queues one ``oifits-fit`` job per current file of the collection the caller may
see; the worker runs them and registers each fit as a Level 3 product with its provenance
(the input file's checksum). Checked on real files against the reference's values
(../shared/reference/interferometry.md: α Cen A 8.28 mas, AX Cir 0.9315 mas, uniform disk)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.access import AccessContext, load_principal, local_operator, visible_products_clause
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import CollectionSpec, add_collection, delegate_granules
from hcdc.archive.models import utcnow
from hcdc.archive.pipeline_models import Product, ProductSource
from hcdc.cli import app
from hcdc.pipeline.operations.worker import Worker
from hcdc.science.checksums import sha256_file

pytestmark = pytest.mark.shared_data

FILES = {"PIONIER_alfCenA_2016-05-31.fits": 8.28, "PIONIER_AXCir_merged.oifits": 0.9315}


def _visible_fits(conn, user) -> set[int]:
    """The fit products ``user`` finds in SQL (visible_products_clause)."""
    return set(
        conn.scalars(
            select(Product.id).where(
                Product.product_type == "oifits-model-fit", visible_products_clause(user, utcnow())
            )
        )
    )


def _run(catalogue, *args: str, ok: bool = True):
    result = CliRunner().invoke(app, [*args, "--root", str(catalogue.settings.root)])
    assert (result.exit_code == 0) == ok, (args, result.stdout, result.stderr)
    return result


@pytest.fixture
def survey(catalogue, shared_data: Path, tmp_path: Path):
    admin = local_operator()
    with catalogue.engine.begin() as conn:
        for name in ("pi", "other"):
            accounts.add_user(conn, admin, name)
        # ten years of embargo from t_max: secure for everyone but the data PI today
        add_collection(
            conn,
            admin,
            CollectionSpec(
                "pionier-l2", "pionier", owner="pi", embargo_months=600, calib_level=2, instrument="PIONIER"
            ),
        )
    sources = []
    for name in FILES:
        sources.append(tmp_path / name)
        shutil.copy(shared_data / "oifits" / "real" / name, sources[-1])
    assert ingest(catalogue, sources, workers=1, copy=True).ingested == len(FILES)
    return catalogue, sources


def test_fit_jobs_make_level3_products_with_provenance(survey) -> None:
    catalogue, sources = survey
    refused = _run(catalogue, "oi", "fit", "--collection", "pionier-l2", "--as", "other", ok=False)
    assert "no current file you may see" in refused.stderr  # embargoed for another user
    assert "no collection" in _run(catalogue, "oi", "fit", "--collection", "nope", ok=False).stderr
    queued = json.loads(
        _run(catalogue, "oi", "fit", "--collection", "pionier-l2", "--as", "pi", "--json").stdout
    )
    assert queued["model"] == "ud" and len(queued["jobs"]) == len(FILES)
    with Worker(catalogue, processes=0) as worker:
        outcomes = worker.run(once=True)
    assert [o.state for o in outcomes] == ["done"] * len(FILES), outcomes
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(Product).where(Product.product_type == "oifits-model-fit")).all()
        assert len(rows) == len(FILES) and {r.level for r in rows} == {3}
        # each fit follows the granules of its file (R17): the data PI sees them, another user
        # does not, until the data PI delegates the collection to them; in SQL the same
        pi, other = (load_principal(conn, name) for name in ("pi", "other"))
        links = conn.execute(select(ProductSource.product_id, ProductSource.file_id)).all()
        assert sorted(p for p, _ in links) == sorted(r.id for r in rows)
        assert {f for _, f in links} == {j["file_id"] for j in queued["jobs"]}
        assert all(AccessContext(conn, pi).can_see_product(r.id).rule == "R17" for r in rows)
        assert not any(AccessContext(conn, other).can_see_product(r.id) for r in rows)
        assert _visible_fits(conn, other) == set()
    with catalogue.engine.begin() as conn:
        delegate_granules(conn, local_operator(), "other", "pionier-l2")
    with catalogue.engine.connect() as conn:
        other = load_principal(conn, "other")
        assert all(AccessContext(conn, other).can_see_product(r.id).rule == "R17" for r in rows)
        assert _visible_fits(conn, other) == {r.id for r in rows}
        listed = _run(catalogue, "products", "--as", "other", "--json").stdout
        assert {p["id"] for p in json.loads(listed)["products"]} >= {r.id for r in rows}
        fitted: dict[str, float] = {}
        for row in rows:
            record = prod.get_record(conn, row.id)
            (inputs,) = [i for i in record["inputs"] if i["name"] == "oifits"]
            (source,) = [s for s in sources if sha256_file(s) == inputs["files"][0]["sha256"]]
            assert record["parameters"]["model"] == "ud"
            (fits_file,) = [
                f for f in prod.product_files(conn, row.id, catalogue.storage_root) if f["role"] == "fits"
            ]
            results = json.loads(Path(fits_file["path"]).read_text())["results"]
            for result in results:
                if "error" not in result:
                    assert result["chi2"] > 0 and result["errors"]["theta_mas"] > 0
                    fitted[f"{source.name}:{result['target']}"] = result["params"]["theta_mas"]
    assert fitted["PIONIER_alfCenA_2016-05-31.fits:Alpha_Cen_A"] == pytest.approx(8.28, abs=0.01)
    assert fitted["PIONIER_AXCir_merged.oifits:AX_CIR"] == pytest.approx(0.9315, abs=0.002)


def test_fits_start_from_the_catalogue_diameter(survey, tmp_path: Path) -> None:
    """--from-catalogue: the single-target file whose star is in the imported JSDC-column table
    starts from its diameter (α Cen A θ_LD = 8.502 ± 0.038 mas, Kervella et al. 2017, A&A 597,
    A137, matched by position: the file calls it Alpha_Cen_A); AX Cir, absent, from the grid."""
    catalogue, _ = survey
    table = tmp_path / "jsdc.csv"
    table.write_text("Name,RAJ2000,DEJ2000,LDD,e_LDD\nalf Cen A,219.869413,-60.834730,8.502,0.038\n")
    _run(catalogue, "oi", "calibrators", "import", str(table))
    queued = json.loads(
        _run(
            catalogue, "oi", "fit", "--collection", "pionier-l2", "--from-catalogue", "--as", "pi", "--json"
        ).stdout
    )
    starts = {job["targets"][0]: job["start"] for job in queued["jobs"]}
    assert starts == {"Alpha_Cen_A": "8.502 mas (LDD of alf Cen A)", "AX_CIR": "grid"}
    bad = _run(
        catalogue,
        "oi",
        "fit",
        "--collection",
        "pionier-l2",
        "--from-catalogue",
        "--model",
        "binary",
        ok=False,
    )
    assert "--from-catalogue" in bad.stderr
    with Worker(catalogue, processes=0) as worker:
        assert [o.state for o in worker.run(once=True)] == ["done", "done"]
    with catalogue.engine.connect() as conn:
        for row in conn.execute(select(Product.id)).all():
            record = prod.get_record(conn, row.id)
            (fits_file,) = [
                f for f in prod.product_files(conn, row.id, catalogue.storage_root) if f["role"] == "fits"
            ]
            (result,) = json.loads(Path(fits_file["path"]).read_text())["results"]
            if result["target"] == "Alpha_Cen_A":
                assert record["parameters"]["theta0_mas"] == pytest.approx(8.502)
                assert result["params"]["theta_mas"] == pytest.approx(8.28, abs=0.01)
            else:
                assert record["parameters"]["theta0_mas"] is None
