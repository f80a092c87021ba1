"""The VOResource record (/vo/resource.xml) and the DataLink VOSI documents, validated against the
IVOA schemas of ../shared/reference/vo_xsd with ``stilts xsdvalidate``."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcdc.archive.db import init_data_centre
from hcdc.web.app import create_app
from hcdc.web.vo.registry import DATALINK_ID, NS, SCS_ID, SIA2_ID, TAP_ID

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "vo_xsd"
XSD_DIR = Path(
    __import__("os").environ.get(
        "HCDC_VO_XSD", REFERENCE if REFERENCE.is_dir() else "/work/shared/reference/vo_xsd"
    )
)

#: RegistryInterface 1.0 declares its global element ri:Resource of type vr:Resource; the XSD is not
#: in vo_xsd, so this one-element schema stands for it (the content is checked by VOResource 1.1)
RI_SCHEMA = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0"
  targetNamespace="http://www.ivoa.net/xml/RegistryInterface/v1.0" elementFormDefault="unqualified">
  <xs:import namespace="http://www.ivoa.net/xml/VOResource/v1.0" schemaLocation="{vr}"/>
  <xs:element name="Resource" type="vr:Resource"/>
</xs:schema>
"""


def xsdvalidate(document: bytes, tmp_path: Path) -> subprocess.CompletedProcess:
    stilts = shutil.which("stilts")
    if stilts is None:
        pytest.skip("stilts is not installed (apt-get install stilts; .ci/setup-vo)")
    if not XSD_DIR.is_dir():
        pytest.skip(f"the IVOA schemas are not at {XSD_DIR}")
    ri = tmp_path / "ri.xsd"
    ri.write_text(RI_SCHEMA.format(vr=(XSD_DIR / "VOResource-v1.1.xsd").as_uri()))
    target = tmp_path / "doc.xml"
    target.write_bytes(document)
    locations = {
        NS["ri"]: ri,
        NS["vr"]: XSD_DIR / "VOResource-v1.1.xsd",
        NS["vs"]: XSD_DIR / "VODataService-v1.2.xsd",
        NS["tr"]: XSD_DIR / "TAPRegExt-v1.0-Erratum1.xsd",
        NS["cap"]: XSD_DIR / "VOSICapabilities-v1.0.xsd",
        NS["avl"]: XSD_DIR / "VOSIAvailability-v1.0.xsd",
        "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": XSD_DIR / "stc-v1.30.xsd",
        "http://www.ivoa.net/xml/VOSITables/v1.0": XSD_DIR / "VOSITables-v1.1.xsd",
        "http://www.ivoa.net/xml/UWS/v1.0": XSD_DIR / "UWS-v1.1.xsd",
        "http://www.w3.org/1999/xlink": XSD_DIR / "xlink.xsd",
        "http://www.w3.org/XML/1998/namespace": XSD_DIR / "xmlnamespace.xsd",
    }
    args = [f"schemaloc={ns}={path}" for ns, path in locations.items()]
    return subprocess.run(
        [stilts, "xsdvalidate", *args, str(target)], capture_output=True, text=True, timeout=120
    )


def errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if "Unused custom schema" not in line]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    catalogue = init_data_centre(tmp_path / "dc")
    yield TestClient(create_app(catalogue=catalogue, secret_key="x"), base_url="http://vo.example.org")
    catalogue.close()


def test_resource_record_is_valid_and_lists_every_service(client, tmp_path):
    response = client.get("/vo/resource.xml")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    done = xsdvalidate(response.content, tmp_path)
    assert done.returncode == 0 and not errors(done), errors(done)
    root = ET.fromstring(response.content)
    assert root.tag == f"{{{NS['ri']}}}Resource"
    assert root.get(f"{{{NS['xsi']}}}type") == "vs:CatalogService"
    assert root.findtext("identifier").startswith("ivo://") and root.findtext("identifier").endswith("/vo")
    found = {
        cap.get("standardID"): cap.find("interface/accessURL").text for cap in root.findall("capability")
    }
    assert found == {
        TAP_ID: "http://vo.example.org/tap",
        SIA2_ID: "http://vo.example.org/sia/query",
        DATALINK_ID: "http://vo.example.org/datalink",
        SCS_ID: "http://vo.example.org/scs/targets",
    }
    # the check can fail: a record without its identifier is refused
    broken = response.content.replace(b"<identifier>", b"<!--").replace(b"</identifier>", b"-->")
    done = xsdvalidate(broken, tmp_path)
    assert errors(done), "xsdvalidate accepted a record without identifier"


def test_datalink_vosi_documents_are_valid(client, tmp_path):
    capabilities = client.get("/datalink/capabilities")
    assert capabilities.status_code == 200
    done = xsdvalidate(capabilities.content, tmp_path)
    assert done.returncode == 0 and not errors(done), errors(done)
    root = ET.fromstring(capabilities.content)
    ids = {c.get("standardID"): c.find("interface/accessURL").text for c in root.findall("capability")}
    assert ids[DATALINK_ID] == "http://vo.example.org/datalink"
    assert ids["ivo://ivoa.net/std/VOSI#availability"] == "http://vo.example.org/datalink/availability"
    availability = client.get("/datalink/availability")
    done = xsdvalidate(availability.content, tmp_path)
    assert done.returncode == 0 and not errors(done), errors(done)
    assert ET.fromstring(availability.content).findtext(f"{{{NS['avl']}}}available") == "true"


def test_cone_search_vosi_documents_are_valid(client, tmp_path):
    for table in ("targets", "detections"):
        for document in ("capabilities", "availability"):
            response = client.get(f"/scs/{table}/{document}")
            assert response.status_code == 200
            done = xsdvalidate(response.content, tmp_path)
            assert done.returncode == 0 and not errors(done), (table, document, errors(done))
        root = ET.fromstring(client.get(f"/scs/{table}/capabilities").content)
        urls = {c.get("standardID"): c.find("interface/accessURL").text for c in root.findall("capability")}
        assert urls[SCS_ID] == f"http://vo.example.org/scs/{table}"
