"""The standard IRDIS DPI workflow: raw sequence -> Level 1 beams (``level1-irdis``) -> Level 2
Stokes/polarisation maps (``irdis-dpi``)."""

from __future__ import annotations

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.workflow import Node, Workflow, register_workflow


@register_workflow("irdis-dpi", modes=[("SPHERE", "IRDIS", "DPI")], priority=10)
def _irdis_dpi() -> Workflow:
    return Workflow(
        name="irdis-dpi",
        version="1.0",
        description="IRDIS DPI raw sequence -> Level 1 beams (ordinary/extraordinary) -> Stokes, Qphi/Uphi",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one DPI sequence and its calibrations"),),
        nodes=(
            Node("level1", "level1-irdis", {"raw": "inputs.raw"}),
            Node("dpi", "irdis-dpi", {"level1": "level1.product", "raw": "inputs.raw"}),
        ),
        outputs={"level1": "level1.product", "level2": "dpi.product", "summary": "dpi.summary"},
    )
