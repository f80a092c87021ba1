"""``l2-user-cube``: Level 2 post-processing of a cube a user brings (FITS) with its angles."""

from __future__ import annotations

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION as L2_VERSION
from hcdc.pipeline.workflow import Node, Workflow, register_workflow


@register_workflow("l2-user-cube", priority=0)
def _l2_user_cube() -> Workflow:
    return Workflow(
        name="l2-user-cube",
        version="1.0",
        description="Level 2 post-processing of a user-supplied cube (FITS) with its angles",
        inputs=(
            Port("cube", DataKind.PATH, "FITS cube (frames, y, x) or (wavelengths, frames, y, x)"),
            Port("angles", DataKind.PATH, "derotation angles, deg (FITS or text)"),
            Port("psf", DataKind.PATH, "off-axis PSF (FITS)", optional=True),
            Port("wavelengths", DataKind.PATH, "wavelengths, um (FITS or text)", optional=True),
            Port("reference", DataKind.PATH, "reference-star cube for RDI (FITS)", optional=True),
        ),
        nodes=(
            Node(
                "level2",
                "l2-postprocess",
                {name: f"inputs.{name}" for name in ("cube", "angles", "psf", "wavelengths", "reference")},
                {"algorithm": "pca", "ncomp": 10},
                version=L2_VERSION,
            ),
        ),
        outputs={"level2": "level2.product", "summary": "level2.summary"},
    )
