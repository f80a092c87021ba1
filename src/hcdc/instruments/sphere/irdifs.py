"""A simulated IRDIFS night: IRDIS (DB_H23 dual-band imaging) and IFS (YJ) observing one target
at once, as SPHERE's IRDIFS mode does (the dichroic sends YJ to the IFS and H to IRDIS).

:func:`simulate_irdifs_night` writes the two arms' raw files with their own simulators into
``out_dir/irdis`` and ``out_dir/ifs``, for the same target and night, both science templates
centred on the target's transit over Paranal (so they overlap in time, and their parallactic
angles follow one time line: :mod:`hcdc.instruments.sphere.observing`), with one set of
companions: each companion's IFS spectrum (flat or methane, :class:`~hcdc.instruments.sphere.ifs.
simulate.IfsCompanion`) gives its IRDIS contrasts at the H2 and H3 centres (1593 and 1667 nm,
:data:`~hcdc.instruments.sphere.constants.IRDIS_FILTER_COMBINATIONS`) -- the methane companion is
fainter in H3, the classic H2/H3 signature. The IFS headers name the IRDIS half's filters
(``INS COMB IFLT = DB_H23``, ``INS1 FILT NAME = B_H``, ``INS1 OPTI2 NAME = D_H23``, as the real
IRDIFS headers with DB_NDH23 do). Each arm's calibrations follow its own simulator.

Ingest makes two datasets (arm IRDIS, mode DBI; arm IFS, mode IFS-YJ) that ``hcdc reduce`` sends
to ``irdis-l1-l2`` and ``ifs-l1-l2``.

Not reproduced: the IRDIS files keep the IRDIS simulator's template keywords (``TPL ID`` of its
DBI template, not ``SPHERE_irdifs_obs``), and the two templates' start times differ by the
difference of their half-durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs.simulate import (
    DEFAULT_COMPANIONS as IFS_DEFAULT_COMPANIONS,
)
from hcdc.instruments.sphere.ifs.simulate import (
    IfsCompanion,
    SimulatedIfsNight,
    simulate_ifs_night,
)
from hcdc.instruments.sphere.irdis.simulate import (
    Companion,
    SequenceSpec,
    SimulatedNight,
    simulate_irdis_night,
)

__all__ = [
    "IRDIFS_IRDIS_SEQUENCE",
    "SimulatedIrdifsNight",
    "irdis_companions",
    "simulate_irdifs_night",
]

#: The IRDIS half: DB_H23 dual-band imaging, 64 s DITs (the IFS template's), FLUX with ND_2.0,
#: waffle 'x'; ``n_object_files`` is set by :func:`simulate_irdifs_night` (default 16, the demo DBI's:
#: ~1 h centred on the transit, enough field rotation for ADI).
IRDIFS_IRDIS_SEQUENCE = SequenceSpec("DB_H23", "DBI", 64.0, 8, 64.0, 4.0, "ND_2.0", "x")


def irdis_companions(companions: tuple[IfsCompanion, ...] | list[IfsCompanion]) -> tuple[Companion, ...]:
    """The IRDIS companions of IFS companions: contrast per band at the DB_H23 centres (H2, H3)
    and their mean for H (the BB_H label)."""
    h2, h3 = sc.IRDIS_FILTER_COMBINATIONS["DB_H23"]["wave_nm"]
    out = []
    for c in companions:
        c2, c3 = float(c.contrast_at(h2)), float(c.contrast_at(h3))
        out.append(
            Companion(c.separation_mas, c.pa_deg, 0.5 * (c2 + c3), {"H2": c2, "H3": c3, "H": 0.5 * (c2 + c3)})
        )
    return tuple(out)


@dataclass
class SimulatedIrdifsNight:
    """The two arms of one simulated IRDIFS night and their common truth."""

    out_dir: Path
    irdis: SimulatedNight
    ifs: SimulatedIfsNight

    def companion_truth(self) -> list[dict[str, Any]]:
        """One row per companion: separation, PA and contrast per band/arm (``H2``, ``H3`` for
        IRDIS, ``YJ`` the mean over the 39 IFS channels)."""
        rows = []
        for irdis_row, ifs_row in zip(self.irdis.companion_truth(), self.ifs.companion_truth(), strict=True):
            contrast = {k: irdis_row["contrast"][k] for k in ("H2", "H3")}
            per_channel = ifs_row["contrast_per_channel"]
            contrast["YJ"] = sum(per_channel) / len(per_channel)
            rows.append(
                {
                    "separation_mas": ifs_row["separation_mas"],
                    "pa_deg": ifs_row["pa_deg"],
                    "spectrum": ifs_row["spectrum"],
                    "contrast": contrast,
                }
            )
        return rows


def simulate_irdifs_night(
    out_dir: str | Path,
    *,
    seed: int = 0,
    night: str = "2018-12-02",
    irdis_scale: str = "medium",
    ifs_scale: str = "small",
    n_irdis_object_files: int = 16,
    companions: tuple[IfsCompanion, ...] | list[IfsCompanion] | None = None,
    crosstalk: bool = True,
) -> SimulatedIrdifsNight:
    """Write an IRDIFS night (IRDIS DB_H23 + IFS YJ, same target, night and companions) into
    ``out_dir/irdis`` and ``out_dir/ifs``; see the module doc. ``companions`` default to the IFS
    simulator's (a flat one at 180 mas and a methane one at 300 mas). Deterministic for a seed."""
    if n_irdis_object_files < 1:
        raise ValueError(f"n_irdis_object_files must be >= 1; got {n_irdis_object_files}")
    comps = tuple(IFS_DEFAULT_COMPANIONS if companions is None else companions)
    out = Path(out_dir)
    sequence = SequenceSpec(
        IRDIFS_IRDIS_SEQUENCE.filter,
        IRDIFS_IRDIS_SEQUENCE.mode,
        IRDIFS_IRDIS_SEQUENCE.object_dit,
        n_irdis_object_files,
        IRDIFS_IRDIS_SEQUENCE.center_dit,
        IRDIFS_IRDIS_SEQUENCE.flux_dit,
        IRDIFS_IRDIS_SEQUENCE.flux_nd,
        IRDIFS_IRDIS_SEQUENCE.waffle_orient,
    )
    ifs = simulate_ifs_night(
        out / "ifs",
        mode="YJ",
        seed=seed,
        scale=ifs_scale,
        companions=comps,
        night=night,
        crosstalk=crosstalk,
        irdis_filter="DB_H23",
    )
    irdis = simulate_irdis_night(
        out / "irdis",
        seed=seed,
        scale=irdis_scale,
        companions=irdis_companions(comps),
        sequences=(sequence,),
        night=night,
    )
    return SimulatedIrdifsNight(out_dir=out, irdis=irdis, ifs=ifs)
