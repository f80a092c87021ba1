"""The standard ZIMPOL workflows (``hcdc reduce`` picks them by the dataset's mode):

* ``zimpol-l1-l2`` (ZIMPOL-IMG): ``level1-zimpol`` then ``l2-postprocess`` (classical ADI by
  default: on the simulated coronagraphic sequence of ``hcdc simulate zimpol --mode imaging`` it
  finds the companion at S/N ~50 within 0.5 mas and 0.1 deg, see tests/instruments/test_zimpol.py);
* ``zimpol-polarimetry-l2`` (ZIMPOL-POL): the Stokes and polarisation maps per camera.
"""

from __future__ import annotations

from typing import Any

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION as L2_VERSION
from hcdc.pipeline.workflow import Node, Workflow, register_workflow

#: Level 2 defaults of the ZIMPOL imaging workflow.
ZIMPOL_LEVEL2_DEFAULTS: dict[str, Any] = {"algorithm": "cadi"}


@register_workflow("zimpol-l1-l2", modes=[("SPHERE", "ZIMPOL", "ZIMPOL-IMG")], priority=10)
def _zimpol_l1_l2() -> Workflow:
    return Workflow(
        name="zimpol-l1-l2",
        version="1.0",
        description="ZIMPOL imaging raw sequence -> Level 1 cube (one plane per camera) -> Level 2",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations"),),
        nodes=(
            Node("level1", "level1-zimpol", {"raw": "inputs.raw"}),
            Node(
                "level2",
                "l2-postprocess",
                {"level1": "level1.product"},
                dict(ZIMPOL_LEVEL2_DEFAULTS),
                version=L2_VERSION,
            ),
        ),
        outputs={"level1": "level1.product", "level2": "level2.product", "summary": "level2.summary"},
    )


@register_workflow("zimpol-polarimetry-l2", modes=[("SPHERE", "ZIMPOL", "ZIMPOL-POL")], priority=10)
def _zimpol_polarimetry() -> Workflow:
    return Workflow(
        name="zimpol-polarimetry-l2",
        version="1.0",
        description="ZIMPOL polarimetric raw sequence -> Stokes and polarisation maps per camera",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations"),),
        nodes=(Node("stokes", "zimpol-polarimetry", {"raw": "inputs.raw"}),),
        outputs={"level2": "stokes.product", "summary": "stokes.summary"},
    )
