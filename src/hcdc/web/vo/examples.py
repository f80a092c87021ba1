"""DALI examples (``/tap/examples``): real ADQL queries, as XHTML+RDFa (DALI 1.1 §2.3).

Each example is a ``div`` with ``typeof="example"``, a ``name`` and a ``query`` property;
``tests/vo/test_tap_examples.py`` runs every one on SQLite and PostgreSQL.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from fastapi import APIRouter
from fastapi.responses import Response

#: (id, name, ADQL, explanation)
EXAMPLES: tuple[tuple[str, str, str, str], ...] = (
    (
        "cone",
        "Products around a position",
        "SELECT TOP 100 obs_publisher_did, target_name, calib_level, t_min, access_url FROM ivoa.obscore "
        "WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 69.4, -2.47, 0.5))",
        "Everything whose field centre lies within 0.5 degree of 51 Eri.",
    ),
    (
        "level2-by-target",
        "Level 2 products of a target",
        "SELECT obs_publisher_did, obs_collection, em_min, em_max, obs_release_date, data_rights "
        "FROM ivoa.obscore WHERE calib_level = 3 AND target_name LIKE '51 Eri%' ORDER BY t_min",
        "Post-processed images (calib_level 3) by target name.",
    ),
    (
        "h-band",
        "Observations covering 1.6 micrometres",
        "SELECT obs_id, instrument_name, em_min, em_max FROM ivoa.obscore "
        "WHERE em_min <= 1.6e-6 AND em_max >= 1.6e-6",
        "Wavelengths are in metres (ObsCore).",
    ),
    (
        "counts",
        "Rows per collection and level",
        "SELECT obs_collection, calib_level, COUNT(*) AS n FROM ivoa.obscore "
        "GROUP BY obs_collection, calib_level ORDER BY obs_collection, calib_level",
        "What the service publishes (that you may see).",
    ),
    (
        "region",
        "Fields that overlap a circle",
        "SELECT obs_publisher_did, s_region FROM ivoa.obscore "
        "WHERE 1 = INTERSECTS(s_region, CIRCLE('ICRS', 69.4, -2.47, 0.1))",
        "s_region is the field covered (an STC-S polygon).",
    ),
    (
        "schema",
        "Columns of ivoa.obscore",
        "SELECT column_name, datatype, unit, ucd, description FROM TAP_SCHEMA.columns "
        "WHERE table_name = 'ivoa.obscore' ORDER BY column_index",
        "TAP_SCHEMA describes every published column.",
    ),
)


def examples_document() -> str:
    items = "".join(
        f'<div typeof="example" id="{eid}" resource="#{eid}">'
        f'<h2 property="name">{escape(name)}</h2><p>{escape(explanation)}</p>'
        f'<pre class="dachs-ex-tapquery" property="query">{escape(query)}</pre></div>'
        for eid, name, query, explanation in EXAMPLES
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" vocab="http://www.ivoa.net/rdf/examples#">'
        "<head><title>hcdc TAP examples</title></head>"
        f"<body><h1>Examples of ADQL queries to this service</h1>{items}</body></html>\n"
    )


router = APIRouter()


@router.get("/tap/examples", include_in_schema=False)
def tap_examples() -> Response:
    return Response(examples_document(), media_type="application/xhtml+xml")


__all__ = ["EXAMPLES", "examples_document", "router"]
