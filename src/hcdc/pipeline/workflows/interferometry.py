"""``oifits-fit``: a homogeneous model fit (uniform disk, limb-darkened disk or binary) of OIFITS
files, registered by the worker as a Level 3 product with its provenance.

``hcdc oi fit --collection NAME`` queues one job per current file of a collection (the survey
case: many files, one model, the same parameters), so each file's fit is its own product,
re-runnable and citable; the rows of its ``fits.json`` are per target of the file (a granule
when the file holds one night and one instrument mode per target).
"""

from __future__ import annotations

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.workflow import Node, Workflow, register_workflow


@register_workflow("oifits-fit", priority=0)
def _oifits_fit() -> Workflow:
    return Workflow(
        name="oifits-fit",
        version="1.0",
        description="Level 3 homogeneous model fit (UD / LD / binary) of calibrated OIFITS files",
        inputs=(Port("oifits", DataKind.RAW_FILES, "calibrated OIFITS file(s)"),),
        nodes=(Node("fit", "oifits-fit", {"oifits": "inputs.oifits"}, {"model": "ud"}),),
        outputs={"fits": "fit.fits", "summary": "fit.summary"},
    )
