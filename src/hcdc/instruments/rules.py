"""Declarative calibration-association rules (data only; evaluated by
:func:`hcdc.instruments.association.associate`).

An instrument module declares, per arm, a tuple of :class:`Need` and attaches it to its
:class:`~hcdc.instruments.base.Instrument` class as ``association_rules``. Keys name
:class:`~hcdc.instruments.base.FileMetadata` attributes (``dit``, ``filter``, ``nd_filter``,
``mode``, ``readout_mode``, ``coronagraph``, ...) or entries of ``extra`` written
``extra.<name>``. ``dit`` is compared with a 0.01 s tolerance (vlt-sphere rounds DITs to
0.01 s; the IFS calibration DIT is 1.650726 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Two DITs are "the same" when they differ by at most this much [s].
DIT_TOLERANCE_S = 0.01


@dataclass(frozen=True)
class Need:
    """One calibration a science dataset needs.

    * ``name``: need name in the report (``background``, ``flat``, ``detector_flat:BB`` ...).
    * ``kinds``: acceptable ``file_class`` values in priority order; an entry may be a tuple
      of classes of equal priority (e.g. ``("DARK", "BACKGROUND")``).
    * ``match``: keys whose value must equal the science file's value (science groups with
      different values, e.g. OBJECT at 64 s and FLUX at 12 s, each get their own choice);
      ``match_by_kind`` overrides ``match`` for some kinds (a SKY must match the ND, a DARK
      need not match the filter).
    * ``fixed``: keys that must have a given value (``{"dit": 1.65}``).
    * ``when``: the need applies only to science whose key has one of the listed values.
    * ``count``: how many files to choose (nearest in time); ``min_count``: fewer is missing;
      ``distinct``: the chosen files must differ in this key (IFS detector flats: two DITs).
    * ``window_days``: a choice further than this from the science time gives a warning, and
      any candidate inside the window is preferred to a higher-priority one outside it.
    * ``required``: a missing optional need is listed in the report's ``optional_missing``,
      not in ``missing``.
    * ``source``: where the rule comes from (shown in documentation and reasons).
    """

    name: str
    kinds: tuple[str | tuple[str, ...], ...]
    match: tuple[str, ...] = ()
    match_by_kind: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    count: int = 1
    min_count: int = 1
    distinct: str | None = None
    window_days: float = 1.0
    required: bool = True
    source: str = ""

    def kind_groups(self) -> list[tuple[str, ...]]:
        """``kinds`` as a list of equal-priority groups."""
        return [(k,) if isinstance(k, str) else tuple(k) for k in self.kinds]

    def match_keys(self, kind: str) -> tuple[str, ...]:
        """Keys matched against the science file for a candidate of class ``kind``."""
        return tuple(self.match_by_kind.get(kind, self.match))

    def all_match_keys(self) -> tuple[str, ...]:
        """Union of every kind's match keys (the keys that split science into groups)."""
        keys = list(self.match)
        for extra_keys in self.match_by_kind.values():
            keys.extend(k for k in extra_keys if k not in keys)
        return tuple(dict.fromkeys(keys))
