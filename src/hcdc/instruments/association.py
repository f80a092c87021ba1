"""Datasets, sequence roles and calibration association (pure functions, no database).

* :func:`dataset_key` says which observation a science file belongs to (same instrument and
  arm, night, OB, instrument setup); calibrations have no dataset.
* :func:`sequence_role` gives the role of a science file in its sequence (OBJECT,
  OBJECT,CENTER, OBJECT,FLUX, SKY).
* :func:`associate` chooses, for the science files of ONE dataset, the calibration files
  each need of the instrument's rule table asks for (tables of
  :class:`~hcdc.instruments.rules.Need` declared in each instrument module), and reports
  the choices with reasons, warnings and missing needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hcdc.instruments import registry
from hcdc.instruments.base import FileMetadata, Instrument
from hcdc.instruments.rules import DIT_TOLERANCE_S, Need


@dataclass
class Choice:
    """The calibration files chosen for one need.

    ``file_ids`` are the ids the caller passed in; ``kind`` is the normalized class that
    satisfied the need (e.g. ``SKY``, ``DARK,BACKGROUND``, ``DARK``); ``delta_hours`` is the
    largest |time difference| between a chosen file and the reference science time (hours);
    ``fallback`` is True when a lower-priority kind was used.
    """

    need: str
    file_ids: list[int]
    kind: str
    reason: str
    delta_hours: float
    fallback: bool = False


@dataclass
class AssociationReport:
    """Result of :func:`associate` for one dataset.

    ``chosen`` maps a need name (``background``, ``flat``, ``wave``, ``specpos``, ``ifu_flat``,
    ``detector_flat:<lamp>``, ``distortion``, ``calib_dark``, ...) to its :class:`Choice`;
    ``missing`` lists the required needs nothing satisfied (with why, in ``missing_reasons``;
    optional ones go to ``optional_missing``); ``warnings`` are human-readable (time window
    exceeded, fallback used, fewer files than wanted, ...). ``needs`` lists every need that
    applied; ``reference_mjd`` is the science time the distances are measured from (the
    middle of the science files' time span).
    """

    dataset: str | None
    instrument: str | None
    arm: str | None
    reference_mjd: float | None = None
    needs: list[str] = field(default_factory=list)
    chosen: dict[str, Choice] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    missing_reasons: dict[str, str] = field(default_factory=dict)
    optional_missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (only str/int/float/bool/list/dict/None)."""
        return asdict(self)

    @property
    def complete(self) -> bool:
        """True when every need was satisfied."""
        return not self.missing


#: Normalized classes that serve as calibrations (SKY frames are science-category files that
#: serve as backgrounds).
CALIBRATION_CLASSES = frozenset(
    {
        "DARK",
        "BACKGROUND",
        "SKY",
        "FLAT",
        "DETECTOR_FLAT",
        "IFU_FLAT",
        "SPECPOS",
        "WAVE",
        "DISTORTION",
        "BIAS",
    }
)

#: file_class -> sequence role (the DPR TYPE spelling of the role).
ROLE_BY_CLASS: dict[str, str] = {
    "SCIENCE": "OBJECT",
    "CENTER": "OBJECT,CENTER",
    "FLUX": "OBJECT,FLUX",
    "SKY": "SKY",
}

#: Roles that ask for calibrations (SKY frames are themselves backgrounds).
ROLES_NEEDING_CALIBRATION = frozenset({"OBJECT", "OBJECT,CENTER", "OBJECT,FLUX"})

#: Instruments whose files are products, not raw frames: they form no dataset.
NO_DATASET_INSTRUMENTS = frozenset({"OIFITS", "UNKNOWN"})


def _instrument(meta: FileMetadata) -> Instrument | None:
    for inst in registry.instruments():
        if inst.name == meta.instrument:
            return inst
    return None


def value_of(meta: FileMetadata, key: str) -> Any:
    """Value of a rule key: a FileMetadata attribute or ``extra.<name>``."""
    if key.startswith("extra."):
        return meta.extra.get(key[6:])
    return getattr(meta, key)


def values_match(key: str, wanted: Any, actual: Any) -> bool:
    """Equality for rule keys; DITs within :data:`DIT_TOLERANCE_S` are equal."""
    if key == "dit":
        if wanted is None or actual is None:
            return wanted is None and actual is None
        return abs(float(wanted) - float(actual)) <= DIT_TOLERANCE_S + 1e-9
    return wanted == actual


def is_calibration(meta: FileMetadata) -> bool:
    """True for calibration files (DPR CATG CALIB, and SKY frames, which serve as backgrounds)."""
    if meta.instrument in NO_DATASET_INSTRUMENTS:
        return False
    return meta.file_class in CALIBRATION_CLASSES


def sequence_role(meta: FileMetadata) -> str | None:
    """Role of a science file in its sequence: ``OBJECT``, ``OBJECT,CENTER``, ``OBJECT,FLUX``
    or ``SKY``; None for calibrations, acquisitions, AO telemetry and unknown files."""
    if meta.instrument in NO_DATASET_INSTRUMENTS:
        return None
    return ROLE_BY_CLASS.get(meta.file_class or "")


def dataset_key(meta: FileMetadata) -> str | None:
    """Key of the observation a science file belongs to, None for calibrations.

    Files with the same key form one dataset: same instrument and arm, night, OB id (or
    target when the OB id is absent) and instrument setup (the instrument's
    ``dataset_setup`` keys: mode and filter combination for SPHERE IRDIS, mode for IFS,
    filter and camera for NACO). SKY frames of the sequence belong to it too.
    The key is a readable string, e.g. ``SPHERE/IFS/2020-03-07/OB2485392/IFS-YJ``.
    """
    if sequence_role(meta) is None or meta.night is None:
        return None
    inst = _instrument(meta)
    setup_keys = inst.dataset_setup.get(meta.arm, ()) if inst else ()
    if meta.ob_id is not None and meta.ob_id > 0:
        block = f"OB{meta.ob_id}"
    else:
        block = f"TARGET={(meta.target or 'unknown').strip()}"
    parts = [meta.instrument, meta.arm or "-", meta.night.isoformat(), block]
    parts += [str(value_of(meta, key) if value_of(meta, key) is not None else "-") for key in setup_keys]
    return "/".join(parts)


def _applies(need: Need, meta: FileMetadata) -> bool:
    return all(value_of(meta, key) in allowed for key, allowed in need.when.items())


def _group_label(need: Need, key_values: tuple[Any, ...], varying: list[int]) -> str:
    keys = need.all_match_keys()
    parts = []
    for i in varying:
        value = key_values[i]
        parts.append(f"{keys[i]}={value:g}" if isinstance(value, float) else f"{keys[i]}={value}")
    return f"{need.name}:{','.join(parts)}"


def _describe(keys: Sequence[str], science: FileMetadata, fixed: dict[str, Any]) -> str:
    parts = [f"{k}={value_of(science, k)}" for k in keys]
    parts += [f"{k}={v}" for k, v in fixed.items()]
    return ", ".join(parts) if parts else "any setup"


def _matches(need: Need, kind: str, science: FileMetadata, candidate: FileMetadata) -> bool:
    if candidate.file_class != kind:
        return False
    for key in need.match_keys(kind):
        wanted = value_of(science, key)
        if wanted is None:
            continue  # the science file does not say: no constraint
        if not values_match(key, wanted, value_of(candidate, key)):
            return False
    return all(values_match(key, wanted, value_of(candidate, key)) for key, wanted in need.fixed.items())


def _pick(need: Need, pool: list[tuple[int, FileMetadata, float]]) -> list[tuple[int, FileMetadata, float]]:
    """Up to ``need.count`` nearest candidates (pool sorted by |dt|), distinct in ``need.distinct``."""
    chosen: list[tuple[int, FileMetadata, float]] = []
    for item in pool:
        if need.distinct and any(
            values_match(need.distinct, value_of(item[1], need.distinct), value_of(c[1], need.distinct))
            for c in chosen
        ):
            continue
        chosen.append(item)
        if len(chosen) == need.count:
            break
    return chosen


def _choose(
    need: Need,
    name: str,
    science: FileMetadata,
    reference: float,
    candidates: Sequence[tuple[int, FileMetadata]],
    report: AssociationReport,
) -> None:
    """Evaluate one need for one science group and record the choice / warning / missing."""
    groups = need.kind_groups()
    window = need.window_days
    # pass 1 only inside the time window (so a same-night DARK,BACKGROUND beats a week-old
    # SKY), pass 2 anywhere (with a warning)
    for inside in (True, False):
        for rank, group in enumerate(groups):
            pool = []
            for cid, cand in candidates:
                if cand.mjd_obs is None or not any(_matches(need, kind, science, cand) for kind in group):
                    continue
                delta = abs(cand.mjd_obs - reference)
                if inside and delta > window:
                    continue
                pool.append((cid, cand, delta))
            if not pool:
                continue
            pool.sort(key=lambda item: (item[2], item[0]))
            chosen = _pick(need, pool)
            if len(chosen) < need.min_count:
                continue
            kind = ",".join(sorted({c[1].file_class or "" for c in chosen}))
            delta_days = max(c[2] for c in chosen)
            keys = need.match_keys(chosen[0][1].file_class or "")
            reason = (
                f"{len(chosen)} {kind} nearest in time ({delta_days * 24:.2f} h) with "
                f"{_describe(keys, science, dict(need.fixed))}"
            )
            choice = Choice(
                need=name,
                file_ids=[c[0] for c in chosen],
                kind=kind,
                reason=reason,
                delta_hours=round(delta_days * 24.0, 4),
                fallback=rank > 0,
            )
            report.chosen[name] = choice
            if rank > 0:
                preferred = " / ".join(",".join(g) for g in groups[:rank])
                report.warnings.append(f"{name}: fallback to {kind}, no {preferred} with the science setup")
            if not inside:
                report.warnings.append(
                    f"{name}: nearest {kind} is {delta_days:.2f} days from the science, "
                    f"beyond the {window:g}-day window"
                )
            if len(chosen) < need.count and need.min_count < need.count:
                report.warnings.append(f"{name}: only {len(chosen)} of {need.count} wanted {kind} files")
            return
    # nothing: explain
    kinds = [k for g in groups for k in g]
    same_kind = [c for _, c in candidates if c.file_class in kinds]
    wanted = _describe(need.all_match_keys(), science, dict(need.fixed))
    if same_kind:
        why = f"{len(same_kind)} {'/'.join(kinds)} file(s) but none with {wanted}"
        if need.min_count > 1:
            why += f" (at least {need.min_count} needed" + (
                f" with distinct {need.distinct})" if need.distinct else ")"
            )
    else:
        why = f"no {'/'.join(kinds)} file among the candidates (wanted {wanted})"
    if need.required:
        report.missing.append(name)
        report.missing_reasons[name] = why
    else:
        report.optional_missing.append(name)


def associate(
    science: Sequence[tuple[int, FileMetadata]],
    candidates: Sequence[tuple[int, FileMetadata]],
) -> AssociationReport:
    """Choose calibrations for the science files of ONE dataset (pure function).

    ``science``: (id, metadata) of the dataset's files; ``candidates``: (id, metadata) of the
    calibration files that may be used (any night: the rules' time windows decide).
    Rules come from the instrument module's ``association_rules`` table (see
    :class:`hcdc.instruments.rules.Need`): each need lists acceptable kinds in priority order,
    match keys (DIT within 0.01 s, filter, ND, ...), how many files, and a time window.
    Candidates inside the window are preferred, then the highest-priority kind, then the
    nearest in time to the reference time (the middle of the science files' span; ties go
    to the lower id). A choice outside the window, a lower-priority kind and too few files
    give warnings; needs nothing satisfies are reported missing with the reason.
    Science files of different match-key values (e.g. OBJECT at 64 s and OBJECT,FLUX at
    12 s) get separate choices, named ``<need>:<key>=<value>,...``.
    """
    if not science:
        return AssociationReport(dataset=None, instrument=None, arm=None)
    first_meta = science[0][1]
    report = AssociationReport(
        dataset=dataset_key(first_meta), instrument=first_meta.instrument, arm=first_meta.arm
    )
    needing = [
        m for _, m in science if sequence_role(m) in ROLES_NEEDING_CALIBRATION and m.mjd_obs is not None
    ]
    if not needing:
        return report
    times = [m.mjd_obs for m in needing]
    reference = (min(times) + max(times)) / 2.0
    report.reference_mjd = reference
    inst = _instrument(first_meta)
    rules: tuple[Need, ...] = tuple(inst.association_rules.get(first_meta.arm, ())) if inst else ()
    usable = [
        (cid, c) for cid, c in candidates if c.instrument == first_meta.instrument and c.arm == first_meta.arm
    ]
    for need in rules:
        applicable = [m for m in needing if _applies(need, m)]
        if not applicable:
            continue
        keys = need.all_match_keys()
        groups: dict[tuple[Any, ...], FileMetadata] = {}
        for meta in sorted(applicable, key=lambda m: (sequence_role(m) != "OBJECT", m.mjd_obs)):
            key_values = tuple(
                round(value_of(meta, k), 2)
                if k == "dit" and value_of(meta, k) is not None
                else value_of(meta, k)
                for k in keys
            )
            groups.setdefault(key_values, meta)  # an OBJECT file represents its group
        varying = [i for i in range(len(keys)) if len({kv[i] for kv in groups}) > 1]
        for key_values, representative in groups.items():
            name = need.name if len(groups) == 1 else _group_label(need, key_values, varying)
            report.needs.append(name)
            _choose(need, name, representative, reference, usable, report)
    return report
