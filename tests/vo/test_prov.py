# ruff: noqa: F811 - the fixtures of dl_world are imported by name
"""Provenance as the IVOA Provenance DM in W3C PROV-JSON (/datalink/prov): read back by the ``prov``
package (the W3C PROV reference library), compared with hcdc's own provenance tables, down to the
raw files; hidden inputs withheld; hostile and hidden IDs answered like nonexistent ones."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import ProductFile, ProvenanceEntry

from .dl_world import vo_client, vo_l2_source, vo_world  # noqa: F401 - fixtures

#: the PROV-JSON top-level keys (W3C member submission, section 2)
PROV_JSON_KEYS = {
    "prefix",
    "entity",
    "activity",
    "agent",
    "wasGeneratedBy",
    "used",
    "wasInformedBy",
    "wasStartedBy",
    "wasEndedBy",
    "wasInvalidatedBy",
    "wasDerivedFrom",
    "wasAttributedTo",
    "wasAssociatedWith",
    "actedOnBehalfOf",
    "wasInfluencedBy",
    "specializationOf",
    "alternateOf",
    "hadMember",
    "bundle",
}
#: for each relation: its (attribute, element kind it must name)
REFERENCES = {
    "used": (("prov:activity", "activity"), ("prov:entity", "entity")),
    "wasGeneratedBy": (("prov:entity", "entity"), ("prov:activity", "activity")),
    "wasDerivedFrom": (
        ("prov:generatedEntity", "entity"),
        ("prov:usedEntity", "entity"),
        ("prov:activity", "activity"),
    ),
    "wasAssociatedWith": (("prov:activity", "activity"), ("prov:agent", "agent"), ("prov:plan", "entity")),
    "wasAttributedTo": (("prov:entity", "entity"), ("prov:agent", "agent")),
}


def prov_package():
    try:
        import prov.model  # noqa: F401
    except ImportError:
        import os

        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("the prov package (test dependency) is not installed")
        pytest.skip("the prov package (W3C PROV reference library) is not installed")
    import prov.model

    return prov.model


def check_shape(document: dict) -> None:
    """PROV-JSON structure: known keys, QName prefixes declared, relations name existing records."""
    assert set(document) <= PROV_JSON_KEYS, set(document) - PROV_JSON_KEYS
    prefixes = set(document["prefix"]) | {"prov", "xsd"}
    for kind in ("entity", "activity", "agent"):
        for key, attributes in document.get(kind, {}).items():
            assert key.split(":", 1)[0] in prefixes, key
            assert isinstance(attributes, dict)
    for relation, refs in REFERENCES.items():
        for key, body in document.get(relation, {}).items():
            assert key.startswith("_:"), key
            for attribute, kind in refs:
                if attribute in body:
                    assert body[attribute] in document[kind], (relation, body)


def get_prov(client, did: str):
    return client.get("/datalink/prov", params={"ID": did})


def test_prov_json_of_a_level2_product_down_to_the_raw_files(vo_world, vo_client):
    model = prov_package()
    chain = vo_world.chains["public"]
    response = get_prov(vo_client(), vo_world.did("product", chain.level2))
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    document = response.json()
    check_shape(document)

    # the W3C reference library reads it, and its own PROV-JSON reads back the same graph
    parsed = model.ProvDocument.deserialize(content=response.text, format="json")
    again = model.ProvDocument.deserialize(content=parsed.serialize(format="json"), format="json")
    assert parsed == again
    assert len(list(parsed.get_records(model.ProvActivity))) == 2  # the Level 2 run and the Level 1 run
    assert len(list(parsed.get_records())) == len(list(again.get_records()))
    provn = parsed.get_provn()
    assert "wasGeneratedBy(" in provn and "used(" in provn and "wasDerivedFrom(" in provn

    # compared with hcdc's provenance tables
    with vo_world.world.catalogue.engine.connect() as conn:
        entries = {
            e.product_id: e
            for e in conn.execute(
                select(ProvenanceEntry).where(ProvenanceEntry.product_id.in_([chain.level1, chain.level2]))
            )
        }
        raw = conn.execute(select(File.id, File.sha256).where(File.id.in_([chain.raw, chain.dark]))).all()
        product_files = conn.execute(
            select(ProductFile.id, ProductFile.sha256).where(ProductFile.product_id == chain.level2)
        ).all()
    for product_id, entry in entries.items():
        run = f"hcdc:run-{entry.record_id}"
        activity = document["activity"][run]
        assert (
            activity["voprov:name"] == entry.recipe
            and activity["hcdc:recipe_version"] == entry.recipe_version
        )
        assert activity["prov:startTime"] == entry.started and activity["prov:endTime"] == entry.finished
        generated = [
            r["prov:entity"] for r in document["wasGeneratedBy"].values() if r["prov:activity"] == run
        ]
        assert f"hcdc:product-{product_id}" in generated
        params = {
            document["entity"][r["prov:entity"]]["voprov:name"]: document["entity"][r["prov:entity"]][
                "prov:value"
            ]
            for r in document["used"].values()
            if r["prov:activity"] == run and r["prov:role"] == "voprov:parameter"
        }
        expected = {
            k: v if isinstance(v, str | int | float | bool) else json.dumps(v)
            for k, v in entry.parameters.items()
        }
        assert params == expected
        (association,) = [a for a in document["wasAssociatedWith"].values() if a["prov:activity"] == run]
        agent = document["agent"][association["prov:agent"]]
        assert agent["prov:type"] == "prov:SoftwareAgent"
        assert (
            agent["hcdc:version"] == entry.software_version and agent["hcdc:git_commit"] == entry.git_commit
        )
    # the raw file and the dark, with their catalogue checksums, used by the Level 1 run
    l1_run = f"hcdc:run-{entries[chain.level1].record_id}"
    used_by_l1 = {r["prov:entity"] for r in document["used"].values() if r["prov:activity"] == l1_run}
    for file_id, sha in raw:
        assert f"hcdc:file-{file_id}" in used_by_l1
        assert document["entity"][f"hcdc:file-{file_id}"]["hcdc:sha256"] == sha
    assert document["entity"][f"hcdc:file-{chain.dark}"]["hcdc:role"] == "calibration"
    # the Level 2 run used the Level 1 product (its 'level1' input)
    l2_run = f"hcdc:run-{entries[chain.level2].record_id}"
    assert {
        (r["prov:entity"], r["prov:role"]) for r in document["used"].values() if r["prov:activity"] == l2_run
    } >= {(f"hcdc:product-{chain.level1}", "level1")}
    # every file of the product is an entity with its checksum
    for f in product_files:
        assert document["entity"][f"hcdc:productfile-{f.id}"]["hcdc:sha256"] == f.sha256
    assert "withheld" not in response.text


def test_hidden_inputs_are_withheld(vo_world, vo_client):
    """A product the caller sees through a workspace (R8) while its Level 1 and raw data stay
    hidden: the graph shows withheld inputs, never their names, checksums or ids."""
    chain = vo_world.chains["private"]
    engine = vo_world.world.catalogue.engine
    with engine.begin() as conn:
        accounts.place_in_workspace(conn, local_operator(), "member", chain.level2)
        hidden = {
            "raw": conn.scalar(select(File.sha256).where(File.id == chain.raw)),
            "level1": conn.scalar(
                select(ProvenanceEntry.record_id).where(ProvenanceEntry.product_id == chain.level1)
            ),
        }
    did = vo_world.did("product", chain.level2)
    member = get_prov(vo_client("member"), did)
    assert member.status_code == 200
    check_shape(member.json())
    assert any(key.startswith("hcdc:withheld-") for key in member.json()["entity"])
    for marker in hidden.values():
        assert marker not in member.text
    assert f"hcdc:product-{chain.level1}" not in member.text and f"hcdc:file-{chain.raw}" not in member.text
    # the owner sees the whole graph
    owner = get_prov(vo_client("owner"), did)
    assert all(marker in owner.text for marker in hidden.values())
    assert "withheld" not in owner.text


def test_hidden_unknown_and_hostile_ids(vo_world, vo_client):
    chain = vo_world.chains["private"]
    client = vo_client("other_pi")
    hidden = vo_world.did("product", chain.level2)
    absent = vo_world.did("product", 999_999)
    got_hidden, got_absent = get_prov(client, hidden), get_prov(client, absent)
    assert got_hidden.status_code == got_absent.status_code == 404
    assert got_hidden.json()["error"] == got_absent.json()["error"].replace(absent, hidden)
    for hostile in (
        "",
        "garbage",
        "ivo://x/product?1",
        f"ivo://{vo_world.authority}/product?1' OR 1=1",
        "ivo://" + "a" * 5000,
    ):
        response = get_prov(client, hostile)
        assert response.status_code in (400, 404), hostile
        assert response.json()["error"].startswith(("UsageFault: ", "NotFoundFault: "))
    for big in ("2147483648", "99999999999999999999999"):
        assert get_prov(client, f"ivo://{vo_world.authority}/product?{big}").status_code == 404


def test_prov_of_a_raw_file(vo_world, vo_client):
    chain = vo_world.chains["public"]
    document = get_prov(vo_client(), vo_world.did("file", chain.raw)).json()
    check_shape(document)
    assert list(document["entity"]) == [f"hcdc:file-{chain.raw}"]
    private = vo_world.chains["private"]
    assert get_prov(vo_client(), vo_world.did("file", private.raw)).status_code == 404
    assert get_prov(vo_client("owner"), vo_world.did("file", private.raw)).status_code == 200
