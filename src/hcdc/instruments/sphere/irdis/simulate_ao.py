"""SPARTA AO telemetry for a simulated IRDIS night, consistent with its science frames.

:func:`hcdc.instruments.sphere.irdis.simulate.simulate_irdis_night` calls this module when asked
for AO telemetry (``ao_telemetry=True`` or an :class:`AoTelemetrySpec`):

1. :func:`simulate_telemetry` draws the night's true conditions on a regular grid
   (``sample_s``) from before the first science template to after the last: log-normal,
   exponentially correlated seeing and wind (:mod:`hcdc.science.simulation.ao_conditions`),
   r0, tau0, and the Strehl ratio the AO reaches under them; SPARTA's estimates are the truth
   times a small relative noise, and a few samples are written outside the validity limits
   (as real telemetry has: loop opening, saturated estimates) so that readers must discard them.
2. :func:`condition_speckles` makes the speckle pattern of the science frames follow the same
   conditions: its brightness is multiplied by ``(1 - Strehl(t)) / (1 - Strehl_ref)``, the
   reference being the Strehl of the median conditions (so ``speckle_level`` keeps its meaning).
   The PSF core (and so the OBJECT,FLUX frames) is not scaled by the Strehl: a known
   simplification, documented in docs/monitoring.md.
3. :func:`write_telemetry_files` writes ``OBJECT,AO`` files during each science template (one
   file per ``file_s`` seconds, as SPARTA records during an OB), with the template's OB
   keywords, so that ingest classifies them (``AO_TELEMETRY``) and associates them by OB/time.

The true series is returned (:class:`SimulatedTelemetry`) and written into the night's
``simulation_truth.json`` under ``ao_telemetry``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time, TimeDelta

from hcdc.instruments.sphere.sparta import write_sparta
from hcdc.science.monitoring.conditions import r0_from_seeing, tau0_s
from hcdc.science.simulation.ao_conditions import (
    AoSystem,
    TurbulenceModel,
    expected_strehl,
    halo_factor,
    simulate_turbulence,
)
from hcdc.science.simulation.speckles import EvolvingSpeckles

__all__ = [
    "AoTelemetrySpec",
    "ObservationWindow",
    "SimulatedTelemetry",
    "ConditionedSpeckles",
    "windows_from_plan",
    "simulate_telemetry",
    "condition_speckles",
    "write_telemetry_files",
    "ambient_conditions",
]

_DAY_S = 86400.0


@dataclass(frozen=True)
class AoTelemetrySpec:
    """How the telemetry is simulated. Times in seconds; noises are relative (1 sigma).

    ``sample_s``: AtmPerfParams / loop-table sampling (assumed; SPARTA's own cadence is not in
    the sources read); ``file_s``: time covered by one file; ``margin_s``: true conditions are
    drawn this long before the first and after the last template; ``invalid_fraction``: share
    of samples written outside the validity limits; ``dtts_flux_adu``: DTTS ``Flux_avg`` at
    Strehl 1 (the DTTS sees the PSF core, so its flux follows the Strehl); ``vis_flux_adu``:
    visible WFS ``Flux_avg``; ``modulate_speckles``: let the science speckles follow the Strehl;
    ``bad_stretches``: ``(start_s, end_s, seeing_factor, wind_factor)`` tuples, times in seconds
    since the first template's start, during which the true seeing and wind are multiplied by
    the factors (a passing bad layer: known stretches of degraded frames for frame-selection
    tests; default none).
    """

    turbulence: TurbulenceModel = field(default_factory=TurbulenceModel)
    system: AoSystem = field(default_factory=AoSystem)
    sample_s: float = 30.0
    file_s: float = 600.0
    margin_s: float = 600.0
    r0_noise: float = 0.03
    wind_noise: float = 0.05
    strehl_noise: float = 0.02
    invalid_fraction: float = 0.03
    dtts_flux_adu: float = 4.0e4
    vis_flux_adu: float = 2.0e3
    modulate_speckles: bool = True
    bad_stretches: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class ObservationWindow:
    """One science template (OB): start and end (UTC), OB id and name, programme."""

    start: Time
    end: Time
    obs_id: int
    obs_name: str
    prog_id: str


@dataclass
class SimulatedTelemetry:
    """True conditions on the sampling grid and what was written.

    ``mjd``: sample times (UTC); ``truth``: ``seeing`` (arcsec), ``r0_m``, ``wind_m_s``,
    ``tau0_s``, ``strehl`` (true values); ``measured``: ``r0_m``, ``wind_m_s``, ``strehl`` as
    written (noisy; invalid samples carry out-of-range values); ``invalid``: samples written
    out of range; ``dtts_flux``: IRLoopParams Flux_avg; ``reference_strehl``: Strehl of the
    median conditions; ``files``: written paths; ``windows``: the templates covered.
    """

    spec: AoTelemetrySpec
    mjd: np.ndarray
    truth: dict[str, np.ndarray]
    measured: dict[str, np.ndarray]
    invalid: np.ndarray
    dtts_flux: np.ndarray
    vis_flux: np.ndarray
    reference_strehl: float
    windows: list[ObservationWindow]
    files: list[Path] = field(default_factory=list)

    def truth_at(self, mjd: np.ndarray) -> dict[str, np.ndarray]:
        """True conditions linearly interpolated to ``mjd``."""
        return {k: np.interp(np.asarray(mjd, float), self.mjd, v) for k, v in self.truth.items()}

    def written_mask(self) -> np.ndarray:
        """Samples that fall in a template (the ones written to files)."""
        mask = np.zeros(self.mjd.size, dtype=bool)
        for w in self.windows:
            mask |= (self.mjd >= w.start.mjd) & (self.mjd <= w.end.mjd)
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_s": self.spec.sample_s,
            "file_s": self.spec.file_s,
            **(
                {"bad_stretches": [list(b) for b in self.spec.bad_stretches]}
                if self.spec.bad_stretches
                else {}
            ),
            "reference_strehl": self.reference_strehl,
            "mjd": self.mjd.tolist(),
            "truth": {k: v.tolist() for k, v in self.truth.items()},
            "invalid": np.flatnonzero(self.invalid).tolist(),
            "files": [p.name for p in self.files],
            "windows": [
                {"start": w.start.isot, "end": w.end.isot, "obs_id": w.obs_id, "obs_name": w.obs_name}
                for w in self.windows
            ],
        }


def windows_from_plan(plan: Sequence[Any]) -> list[ObservationWindow]:
    """Science templates of a simulator plan (objects with ``dpr_catg``, ``date_obs``,
    ``fram_utc``, ``obs_id``, ``obs_name``, ``prog_id``), one window per OB."""
    by_ob: dict[int, list[Any]] = {}
    for exp in plan:
        if exp.dpr_catg == "SCIENCE":
            by_ob.setdefault(exp.obs_id, []).append(exp)
    windows = []
    for obs_id, exps in by_ob.items():
        start = min(Time(e.date_obs, scale="utc") for e in exps)
        end = max(Time(e.fram_utc, scale="utc") for e in exps)
        windows.append(ObservationWindow(start, end, obs_id, exps[0].obs_name, exps[0].prog_id))
    return sorted(windows, key=lambda w: w.start.mjd)


def simulate_telemetry(
    rng: np.random.Generator, windows: Sequence[ObservationWindow], spec: AoTelemetrySpec | None = None
) -> SimulatedTelemetry:
    """Draw the true conditions and SPARTA's measurements around ``windows`` (see module doc)."""
    s = spec or AoTelemetrySpec()
    if not windows:
        raise ValueError("no science template to record AO telemetry for")
    if not (s.sample_s > 0 and s.file_s >= s.sample_s):
        raise ValueError(f"need 0 < sample_s <= file_s; got {s.sample_s}, {s.file_s}")
    # Sample grid offset by a fraction of a second so that file names never equal an IRDIS one.
    t0 = windows[0].start - TimeDelta(s.margin_s - 0.137, format="sec")
    span = (windows[-1].end - t0).to_value("s") + s.margin_s
    times_s = np.arange(0.0, span, s.sample_s)
    mjd = t0.mjd + times_s / _DAY_S
    truth = simulate_turbulence(rng, times_s, s.turbulence)
    if s.bad_stretches:
        since_start = times_s - (s.margin_s - 0.137)
        for start_s, end_s, seeing_factor, wind_factor in s.bad_stretches:
            if not (end_s > start_s and seeing_factor > 0 and wind_factor > 0):
                raise ValueError(
                    f"bad stretch {(start_s, end_s, seeing_factor, wind_factor)}: need end > start "
                    "and positive factors"
                )
            inside = (since_start >= start_s) & (since_start < end_s)
            truth["seeing"] = np.where(inside, truth["seeing"] * seeing_factor, truth["seeing"])
            truth["wind_m_s"] = np.where(inside, truth["wind_m_s"] * wind_factor, truth["wind_m_s"])
        truth["r0_m"] = r0_from_seeing(truth["seeing"])
        truth["tau0_s"] = tau0_s(truth["r0_m"], truth["wind_m_s"])
    truth["strehl"] = expected_strehl(truth["r0_m"], truth["wind_m_s"], s.system)
    n = times_s.size
    measured = {
        "r0_m": truth["r0_m"] * (1.0 + s.r0_noise * rng.standard_normal(n)),
        "wind_m_s": truth["wind_m_s"] * (1.0 + s.wind_noise * rng.standard_normal(n)),
        "strehl": np.clip(truth["strehl"] * (1.0 + s.strehl_noise * rng.standard_normal(n)), 0.06, 0.97),
    }
    invalid = rng.random(n) < s.invalid_fraction
    # Out-of-range values of the kinds seen in real telemetry: zero r0 (no estimate), Strehl
    # pinned at 1, absurd wind.
    kind = rng.integers(0, 3, n)
    measured["r0_m"] = np.where(invalid & (kind == 0), 0.0, measured["r0_m"])
    measured["strehl"] = np.where(invalid & (kind == 1), 1.0, measured["strehl"])
    measured["wind_m_s"] = np.where(invalid & (kind == 2), 99.0, measured["wind_m_s"])
    reference = float(
        expected_strehl(r0_from_seeing(s.turbulence.seeing_median), s.turbulence.wind_median, s.system)
    )
    return SimulatedTelemetry(
        spec=s,
        mjd=mjd,
        truth=truth,
        measured=measured,
        invalid=invalid,
        dtts_flux=s.dtts_flux_adu * truth["strehl"] * (1.0 + 0.01 * rng.standard_normal(n)),
        vis_flux=s.vis_flux_adu * (1.0 + 0.01 * rng.standard_normal(n)),
        reference_strehl=reference,
        windows=list(windows),
    )


@dataclass(frozen=True, eq=False)
class ConditionedSpeckles(EvolvingSpeckles):
    """Evolving speckles whose brightness also follows the residual halo of the AO correction:
    the base brightness times ``np.interp(time_s, factor_times_s, factor_values)``."""

    factor_times_s: np.ndarray = field(default_factory=lambda: np.zeros(1))
    factor_values: np.ndarray = field(default_factory=lambda: np.ones(1))

    def brightness(self, time_s: float) -> float:
        return super().brightness(time_s) * float(np.interp(time_s, self.factor_times_s, self.factor_values))


def condition_speckles(
    speckles: EvolvingSpeckles, telemetry: SimulatedTelemetry, t_ref: Time
) -> EvolvingSpeckles:
    """``speckles`` with their brightness following the telemetry's true Strehl; times of the
    speckle model are seconds since ``t_ref`` (the simulator's first DATE-OBS)."""
    if not telemetry.spec.modulate_speckles:
        return speckles
    base = {f.name: getattr(speckles, f.name) for f in fields(EvolvingSpeckles)}
    return ConditionedSpeckles(
        **base,
        factor_times_s=(telemetry.mjd - t_ref.mjd) * _DAY_S,
        factor_values=halo_factor(telemetry.truth["strehl"], telemetry.reference_strehl),
    )


def ambient_conditions(
    telemetry: SimulatedTelemetry, start_end: tuple[Time, Time], airmass: np.ndarray
) -> dict[str, float]:
    """ESO ambient keywords of a science file consistent with the simulated atmosphere: the
    observatory's DIMM reports seeing and tau0 corrected to zenith (``TEL AMBI FWHM START/END``,
    ``TEL AMBI TAU0``), here the true line-of-sight values times airmass^-0.6 / ^0.6 at the
    file's start and end (the same turbulence SPARTA sees; real DIMM and SPARTA values differ
    more, being measured on other stars and volumes)."""
    mjd = np.array([start_end[0].mjd, start_end[1].mjd])
    truth = telemetry.truth_at(mjd)
    x = np.asarray(airmass, dtype=float)
    seeing = truth["seeing"] * x**-0.6
    return {
        "fwhm_start": round(float(seeing[0]), 2),
        "fwhm_end": round(float(seeing[1]), 2),
        "tau0": round(float(np.mean(truth["tau0_s"] * x**0.6)), 5),
    }


def _header(
    window: ObservationWindow,
    first: Time,
    last: Time,
    target: Any,
    origfile: str,
) -> fits.Header:
    """Primary header of a SPARTA file (keywords of vlt-sphere's ``keywords_sparta.dat``)."""
    h = fits.Header()
    h["ORIGIN"] = ("ESO-PARANAL", "European Southern Observatory")
    h["DATE"] = (Time(last, precision=4).isot, "Date the file was written")
    h["TELESCOP"] = ("ESO-VLT-U3", "ESO <TEL>")
    h["INSTRUME"] = ("SPHERE", "Instrument used.")
    h["OBJECT"] = (target.name, "Original target.")
    h["RA"] = (round(target.ra_deg, 6), "[deg] RA (J2000) pointing")
    h["DEC"] = (round(target.dec_deg, 5), "[deg] DEC (J2000) pointing")
    h["MJD-OBS"] = (round(first.mjd, 8), "Obs start")
    h["DATE-OBS"] = (Time(first, precision=4).isot, "Observing date")
    h["ORIGFILE"] = (origfile, "Original File Name")
    for key, value, comment in (
        ("DPR CATG", "SCIENCE", "Observation category"),
        ("DPR TYPE", "OBJECT,AO", "Observation type"),
        ("DPR TECH", "IMAGE", "Observation technique"),
        ("OBS ID", window.obs_id, "Observation block ID"),
        ("OBS NAME", window.obs_name, "OB name"),
        ("OBS PROG ID", window.prog_id, "ESO program identification"),
        ("OBS TARG NAME", target.name, "OB target name"),
        ("AOS VISWFS MODE", "GAIN_1000_FREQ_1380Hz", "SPARTA visible WFS mode"),
        ("AOS IRWFS MODE", "DTTS3", "SPARTA IR WFS mode"),
        ("INS4 DROT2 MODE", "PUPIL", "Derotator mode"),
        ("INS4 FILT2 NAME", "OPEN", "CPI ND filter"),
    ):
        h[f"HIERARCH ESO {key}"] = (value, comment)
    return h


def write_telemetry_files(
    out_dir: str | Path, telemetry: SimulatedTelemetry, target: Any, file_name: Callable[[str], str]
) -> list[Path]:
    """Write the SPARTA files of every template (one per ``file_s`` s) into ``out_dir``;
    ``file_name(date_obs)`` names each file (the simulator's ESO archive naming)."""
    out = Path(out_dir)
    written: list[Path] = []
    counter = 0
    s = telemetry.spec
    for window in telemetry.windows:
        in_window = np.flatnonzero((telemetry.mjd >= window.start.mjd) & (telemetry.mjd <= window.end.mjd))
        per_file = max(int(round(s.file_s / s.sample_s)), 1)
        for chunk_start in range(0, in_window.size, per_file):
            idx = in_window[chunk_start : chunk_start + per_file]
            first = Time(telemetry.mjd[idx[0]], format="mjd", scale="utc")
            last = Time(telemetry.mjd[idx[-1]], format="mjd", scale="utc")
            counter += 1
            doy = first.to_datetime().timetuple().tm_yday
            header = _header(window, first, last, target, f"SPHERE_GEN_SPARTA{doy:03d}_{counter:04d}.fits")
            mjd = telemetry.mjd[idx]
            path = out / file_name(header["DATE-OBS"])
            write_sparta(
                path,
                header,
                atm={k: telemetry.measured[k][idx] for k in ("r0_m", "wind_m_s", "strehl")} | {"mjd": mjd},
                vis={"mjd": mjd, "flux": telemetry.vis_flux[idx], "flux_std": 0.05 * telemetry.vis_flux[idx]},
                ir={
                    "mjd": mjd,
                    "flux": telemetry.dtts_flux[idx],
                    "flux_std": 0.05 * telemetry.dtts_flux[idx],
                },
            )
            written.append(path)
    telemetry.files = written
    return written
