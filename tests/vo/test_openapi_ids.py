"""Every operation of the web application's OpenAPI document has its own operation id (the VO
routes that answer GET and POST were given one id for both, which FastAPI warned about and
which breaks client generators)."""

from __future__ import annotations

import collections
import warnings

from hcdc.archive.db import init_data_centre
from hcdc.web.app import create_app


def test_operation_ids_are_unique(tmp_path) -> None:
    catalogue = init_data_centre(tmp_path / "dc")
    try:
        app = create_app(catalogue=catalogue, secret_key="openapi")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = app.openapi()
    finally:
        catalogue.close()
    assert not [str(w.message) for w in caught if "Operation ID" in str(w.message)]
    operations = [
        (op["operationId"], path, method)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    ]
    counts = collections.Counter(op_id for op_id, _, _ in operations)
    assert not [op for op in operations if counts[op[0]] > 1]
    by_route = {(path, method): op_id for op_id, path, method in operations}
    for path in ("/sia/query", "/datalink"):  # both methods are documented, each under its own id
        assert by_route[(path, "get")] != by_route[(path, "post")]
