"""The standard IFS workflows: raw sequence -> Level 1 spectral cube, and -> Level 2 (spectral
differential imaging on the 39 channels) -> Level 3 companion spectra.

``hcdc reduce`` (and the worker, for a dataset whose science files are SPHERE/IFS in IFS-YJ or
IFS-YJH) picks ``ifs-l1-l2``: its ``raw`` input is the dataset's files with the calibrations that
the catalogue associated (darks, detector flats, SPECPOS, WAVE, IFU flat, backgrounds), which
``level1-ifs`` sorts by their DPR keywords.

1.1: ``level1-ifs`` 0.3 (spectral cross-talk corrected; 0.4 adds the per-frame AO conditions, 0.5 the
band-edge spectral response and is what runs now: a workflow node takes the newest version) and
per-channel contrast curves in Level 2; ``l3-companion-spectra`` 1.1 leaves out a brighter
companion's spectral residual, and 1.2 measures the spectra by NEGFC per channel: what runs now,
pinned (:data:`SPECTRA_VERSION`), since 1.3 and 1.4 are not better on every night measured
(docs/ifs.md §4). ``level1-ifs`` is pinned at 0.5 (:data:`LEVEL1_VERSION`): 0.6 (the newest)
puts the star centres of the small field's red channels right (0.6 px -> 0.08 px), but the
pinned Level 3 then comes out worse on the workflow's night (docs/ifs.md §4 "What S/N >= 20
means"), so both move together or not at all.
"""

from __future__ import annotations

import copy
from typing import Any

from hcdc.pipeline.ports import DataKind, Port
from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION as L2_VERSION
from hcdc.pipeline.workflow import Node, Workflow, register_workflow

_IFS_MODES = [("SPHERE", "IFS", "IFS-YJ"), ("SPHERE", "IFS", "IFS-YJH")]

#: Level 2 defaults of the IFS workflow: ASDI, one full-frame PCA on the library of every
#: wavelength x frame after the spectral rescaling (``mode='single'``), 5 components, the star's
#: core (2 FWHM at the longest wavelength, ~9 px) masked. Chosen because it works on short
#: sequences with little field rotation (where ADI alone cannot separate a companion from the
#: speckles) as on long ones: on the simulated 'small' YJ night (4 frames, 2 deg of rotation)
#: both injected companions are found where they were put (tests/pipeline/test_ifs_workflow.py,
#: docs/ifs.md for the numbers).
#: The 5-sigma contrast curve is computed per channel (``contrast_options.per_wavelength``): each
#: wavelength's row of the CONTRAST table is the limit of that channel's own image (workflow 1.1;
#: 1.0 repeated the final image's limit in every row).
#: ``l3-companion-spectra`` version of the workflow: 1.2. 1.3 (subtracting the bias measured by
#: its injection-recovery trials) puts more channels within 10 % of the truth on every simulated
#: night measured (small seeds 0, 1, 3 and medium seed 0) but has a larger rms on the medium
#: night (0.091 -> 0.099, both companions) and a worse methane band there (docs/ifs.md §4): not
#: better on every seed, so not the workflow's.
SPECTRA_VERSION = "1.2"
#: ``level1-ifs`` version of the IFS workflows: 0.5 (the band-edge response). 0.6 bounds the
#: waffle-spot fit error of a channel's own star centre (docs/ifs.md §3.3): right centres, but
#: ``l3-companion-spectra`` 1.2 at Level 2's position gets worse on the workflow's night (seed 0,
#: flat companion: 91 % -> 69 % of the channels within 10 %), see docs/ifs.md §4.
LEVEL1_VERSION = "0.5"

IFS_LEVEL2_DEFAULTS: dict[str, Any] = {
    "algorithm": "asdi",
    "ncomp": 5,
    "algorithm_params": {"mode": "single", "mask_center_px": 9},
    "contrast_options": {"per_wavelength": True},
}


@register_workflow("ifs-level1", modes=_IFS_MODES, priority=0)
def _ifs_level1() -> Workflow:
    return Workflow(
        name="ifs-level1",
        version="1.1",
        description="IFS YJ/YJH raw sequence -> Level 1 spectral cube (39 channels) with PSF",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one IFS sequence and its calibrations"),),
        nodes=(Node("level1", "level1-ifs", {"raw": "inputs.raw"}, version=LEVEL1_VERSION),),
        outputs={"level1": "level1.product"},
    )


@register_workflow("ifs-l1-l2", modes=_IFS_MODES, priority=10)
def _ifs_l1_l2() -> Workflow:
    return Workflow(
        name="ifs-l1-l2",
        version="1.1",
        description="IFS raw sequence -> Level 1 spectral cube -> Level 2 (ASDI by default) -> "
        "Level 3 companion spectra",
        inputs=(Port("raw", DataKind.RAW_FILES, "raw files of one IFS sequence and its calibrations"),),
        nodes=(
            Node("level1", "level1-ifs", {"raw": "inputs.raw"}, version=LEVEL1_VERSION),
            Node(
                "level2",
                "l2-postprocess",
                {"level1": "level1.product"},
                copy.deepcopy(IFS_LEVEL2_DEFAULTS),
                version=L2_VERSION,
            ),
            Node(
                "spectra",
                "l3-companion-spectra",
                {"level1": "level1.product", "level2": "level2.product"},
                version=SPECTRA_VERSION,
            ),
        ),
        outputs={
            "level1": "level1.product",
            "level2": "level2.product",
            "summary": "level2.summary",
            "spectra": "spectra.product",
        },
    )


#: an IFS astrometric field image (Level 1 grid) + its reference list -> True North, plate scale
IFS_ASTROMETRY_WORKFLOW = "ifs-astrometry"


@register_workflow(IFS_ASTROMETRY_WORKFLOW)
def _ifs_astrometry() -> Workflow:
    return Workflow(
        name=IFS_ASTROMETRY_WORKFLOW,
        version="1.0",
        description="IFS astrometric field image on the Level 1 grid + its reference list -> "
        "True North and plate scale",
        inputs=(
            Port("raw", DataKind.RAW_FILES, "one IFS field image on the Level 1 grid"),
            Port("reference", DataKind.PATH, "the registered reference list (CSV)"),
        ),
        nodes=(
            Node(
                "astrometry", "ifs-astrometric-field", {"raw": "inputs.raw", "reference": "inputs.reference"}
            ),
        ),
        outputs={"measurement": "astrometry.measurement", "summary": "astrometry.summary"},
    )
