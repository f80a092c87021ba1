"""The standard IRDIS workflows: Level 1, Level 1 -> Level 2, the night's calibration masters, and
the astrometric calibration fields (True North and plate scale)."""

from __future__ import annotations

from typing import Any

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipes.astrometric_field import RECIPE_NAME as ASTROMETRY_RECIPE
from hcdc.pipeline.recipes.irdis_masters import RECIPE_NAME
from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION as L2_VERSION
from hcdc.pipeline.workflow import Node, Workflow, register_workflow

CALIBRATION_WORKFLOW = "irdis-calibrations"
ASTROMETRY_WORKFLOW = "irdis-astrometry"

_IRDIS_IMAGING_MODES = [("SPHERE", "IRDIS", "DBI"), ("SPHERE", "IRDIS", "CI")]


@register_workflow("irdis-level1", modes=_IRDIS_IMAGING_MODES, priority=0)
def _irdis_level1() -> Workflow:
    return Workflow(
        name="irdis-level1",
        version="1.0",
        description="IRDIS DBI/CI raw sequence -> Level 1 master cube",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations"),),
        nodes=(Node("level1", "level1-irdis", {"raw": "inputs.raw"}),),
        outputs={"level1": "level1.product"},
    )


#: Level 2 defaults of the IRDIS workflow: annular PCA with 3 components (frames rotated by less
#: than 0.1-1 FWHM excluded from each annulus' library, 4 FWHM annuli). Chosen on the simulated
#: 51 Eri sequences of ``hcdc demo`` (seed 2026) with speckles tuned on the real NACO beta Pic cube
#: (docs/simulation.md), run by benchmarks/demo_level2_algorithms.py (2026-12-06, Level 1 with
#: the robust unguided waffle centring): lowest S/N of the 8 companion detections (small and
#: medium scale, DBI and CI, 250 and 480 mas) and false detections per candidate:
#: cADI 8.0, 1 false at 'medium' in each dataset; annular PCA 1/2/3/4/5 components 7.5 / 8.6 /
#: 8.3 / 8.0 / 7.8 ('medium' only: 8.7 / 10.7 / 12.1 / 12.0 / 12.4); full-frame PCA 1/2/3/5/10
#: 7.1 / 7.9 / 8.5 / 9.2 / 8.4, none false. Annular PCA 3 has the best 'medium' S/N with the
#: smallest errors (<= 2.2 mas, 0.43 deg, 11 % in contrast; 5 and 10 full-frame components err
#: by 17-30 % in contrast, 4-5 annular ones by 4.6-5 mas) and 5-sigma contrasts of 8.2e-5-1.6e-4
#: at 0.25" and 2.7e-5-6.2e-5 at 0.5" ('medium'). The former default (1 component) was chosen
#: on the old, far too stable simulated speckles, on which cADI reached S/N 170-575.
IRDIS_LEVEL2_DEFAULTS: dict[str, Any] = {"algorithm": "pca_annular", "ncomp": 3}


@register_workflow("irdis-l1-l2", modes=_IRDIS_IMAGING_MODES, priority=10)
def _irdis_l1_l2() -> Workflow:
    return Workflow(
        name="irdis-l1-l2",
        version="1.0",
        description="IRDIS DBI/CI raw sequence -> Level 1 master cube -> Level 2 (annular PCA by default)",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations"),),
        nodes=(
            Node("level1", "level1-irdis", {"raw": "inputs.raw"}),
            Node(
                "level2",
                "l2-postprocess",
                {"level1": "level1.product"},
                dict(IRDIS_LEVEL2_DEFAULTS),
                version=L2_VERSION,
            ),
        ),
        outputs={"level1": "level1.product", "level2": "level2.product", "summary": "level2.summary"},
    )


#: frame selection of the selected variant of ``irdis-l1-l2-selection``: the best 80 % of the
#: frames by SPARTA Strehl (frames without telemetry rejected), a conservative default (assumed).
#: On a simulated sequence with a bad stretch covering 40 % of the frames (docs/monitoring.md,
#: "When selection helps") it changed the 5-sigma contrast by < 15 %; rejecting every degraded
#: frame gained ~30 % at 0.5" but cost annular PCA at 0.2". Override with
#: ``level2_selected.frame_selection={...}``.
IRDIS_FRAME_SELECTION_DEFAULTS: dict[str, Any] = {"strehl_quantile": 0.2}


@register_workflow("irdis-l1-l2-selection", modes=_IRDIS_IMAGING_MODES, priority=5)
def _irdis_l1_l2_selection() -> Workflow:
    return Workflow(
        name="irdis-l1-l2-selection",
        version="1.0",
        description="IRDIS DBI/CI raw sequence -> Level 1 -> two Level 2 variants: all frames and "
        "frames selected by AO conditions (best 80 % by Strehl by default)",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations"),),
        nodes=(
            Node("level1", "level1-irdis", {"raw": "inputs.raw"}),
            Node(
                "level2",
                "l2-postprocess",
                {"level1": "level1.product"},
                dict(IRDIS_LEVEL2_DEFAULTS),
                version=L2_VERSION,
            ),
            Node(
                "level2_selected",
                "l2-postprocess",
                {"level1": "level1.product"},
                {**IRDIS_LEVEL2_DEFAULTS, "frame_selection": dict(IRDIS_FRAME_SELECTION_DEFAULTS)},
                version=L2_VERSION,
            ),
        ),
        outputs={
            "level1": "level1.product",
            "level2": "level2.product",
            "level2_selected": "level2_selected.product",
            "summary": "level2.summary",
            "summary_selected": "level2_selected.summary",
        },
    )


@register_workflow(CALIBRATION_WORKFLOW)
def _irdis_calibrations() -> Workflow:
    return Workflow(
        name=CALIBRATION_WORKFLOW,
        version="1.0",
        description="IRDIS calibration group of a night -> master dark/background/sky/flat + bad-pixel map",
        inputs=(
            Port("raw", DataKind.RAW_FILES, "raw files of one calibration group"),
            Port("darks", DataKind.RAW_FILES, "DARK files at the flat DIT (flats)", optional=True),
        ),
        nodes=(Node("masters", RECIPE_NAME, {"raw": "inputs.raw", "darks": "inputs.darks"}),),
        outputs={"master": "masters.master", "badpixels": "masters.badpixels", "summary": "masters.summary"},
    )


@register_workflow(ASTROMETRY_WORKFLOW)
def _irdis_astrometry() -> Workflow:
    return Workflow(
        name=ASTROMETRY_WORKFLOW,
        version="1.0",
        description="IRDIS astrometric calibration field + its reference list -> True North and plate scale",
        inputs=(
            Port("raw", DataKind.RAW_FILES, "one astrometric field file"),
            Port("reference", DataKind.PATH, "the registered reference list (CSV)"),
        ),
        nodes=(
            Node("astrometry", ASTROMETRY_RECIPE, {"raw": "inputs.raw", "reference": "inputs.reference"}),
        ),
        outputs={"measurement": "astrometry.measurement", "summary": "astrometry.summary"},
    )
