"""Write a night of raw IRDIS dual-polarisation imaging (DPI) files with known truth.

:func:`simulate_irdis_dpi_night` runs the IRDIS night simulator
(:func:`hcdc.instruments.sphere.irdis.simulate.simulate_irdis_night`) with one DPI template
(:data:`DPI_SEQUENCE`): pupil tracking, coronagraph, the polariser pair ``P0-90`` in the dual-filter
wheel (``INS COMB IFLT = DP_0_BB_H``), the NIR half-wave plate in (``INS4 OPTI8 NAME = H_NIR``),
OBJECT files cycling through the HWP positions Q+, Q-, U+, U- (``OCS DPI H2RT STOKES``; encoder
``INS4 DROT3 BEGIN/END`` = HWP angle + 152.15 deg, IRDAP), OBJECT,CENTER, OBJECT,FLUX and SKY, and
the morning calibrations (DARK, DARK,BACKGROUND at every DIT, five FLAT,LAMP). Keywords and value
vocabularies: ../shared/reference/sphere.md (a.3, a.7, a.8) and IRDAP ``irdap.py``
(``check_sort_data_create_directories``: ``INS4 COMB ROT`` in FIELD/PUPIL, ``INS4 OPTI8 NAME = H_NIR``,
``INS1 OPTI2 NAME = P0-90``, ``INS1 FILT ID = FILT_BBF_*``). ``DPR TECH = POLARIMETRY,CORONOGRAPHY``
and ``INS1 MODE = DPI`` (vlt-sphere's DPI classification).

The scene (left field = ordinary beam P0, right = extraordinary P90): the coronagraphic star of
the imaging simulator (speckles, waffle spots in CENTER files), unpolarised; a face-on ring disc
(:class:`~hcdc.science.simulation.dpi.PolarisedRing`) polarised azimuthally; the beam mismatch of
the two field throughputs (1.00 / 0.95); the detector model (bias, dark current, flat, bad pixels,
read and photon noise) of the imaging simulator. Instrument (``instrument``):

* ``'mueller'`` (default): each beam is the first row of the Mueller-matrix model
  (:mod:`hcdc.instruments.sphere.irdis.mueller`, van Holstein et al. 2020 parameters for the
  filter and date) at the DIT's parallactic angle, altitude, HWP angle and derotator angle, times
  the Stokes vector incident on the telescope pixel by pixel, so instrumental polarisation,
  efficiency and cross-talk vary with the angles; the field turns on the detector in IRDAP's
  (physical) sense; pupil tracking (``INS4 DROT2 BEGIN/END = alt/2 + 180``, mode ELEV) or field
  tracking (``INS4 COMB ROT = FIELD``, mode SKY, ``POSANG``, ``DROT2 = (POSANG + alt - parang)/2``,
  the image fixed at ``POSANG`` + true north). The speckles stay fixed on the detector in both.
* ``'ideal'``: the 1.0 model (polarisation turning with the pupil-tracking image in hcdc's
  imaging sense, instrumental polarisation ``ip_q``/``ip_u`` fixed in the detector frame).

The truth (``simulation_truth.json``: ``polarimetry``; ``simulation_truth.fits``: ``RING_P``, the
true polarised brightness = ``Q_phi``, north up, star on the centre pixel of a field-sized image)
is written next to the raw files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere.irdis.simulate import (
    FIELD_RESPONSE,
    FIELD_THROUGHPUT,
    FIFTY_ONE_ERI,
    SCALES,
    DPIPolarimetry,
    SequenceSpec,
    SimulatedNight,
    SimulationScale,
    Target,
    simulate_irdis_night,
)
from hcdc.instruments.sphere.simulated_truth import write_truth_json
from hcdc.science.simulation.dpi import PolarisedRing

__all__ = [
    "DEFAULT_RING",
    "DPI_SEQUENCE",
    "SCALES",
    "ring_truth_map",
    "simulate_irdis_dpi_night",
]

#: Default disc: a ring at 30 px (0.37") of 5 px width, polarised brightness 300 ADU/s/px at its
#: peak (brighter by 1.5x towards PA 60 deg, fainter by 0.5x opposite), 30 % polarised.
DEFAULT_RING = PolarisedRing(
    peak=300.0, radius_px=30.0, width_px=5.0, dolp=0.3, asymmetry=0.5, asymmetry_pa_deg=60.0
)

#: The DPI template: BB_H through the P0-90 polariser, 32 s OBJECT DITs, 4 HWP cycles (16 files),
#: flux frames through ND_2.0, '+' waffle; instrumental polarisation +1 % in Q, -0.5 % in U.
DPI_SEQUENCE = SequenceSpec(
    "DP_0_BB_H",
    "DPI",
    object_dit=32.0,
    n_object_files=16,
    center_dit=32.0,
    flux_dit=4.0,
    flux_nd="ND_2.0",
    waffle_orient="+",
    polarimetry=DPIPolarimetry(ring=DEFAULT_RING, ip_q=0.01, ip_u=-0.005),
)


def ring_truth_map(ring: PolarisedRing, size: int) -> np.ndarray:
    """True ``Q_phi`` (= ``P``, ADU/s per px at throughput 1) on a ``size x size`` north-up grid,
    star on pixel ``(size//2, size//2)`` (the centring of the Level 1 products)."""
    return ring.truth_map((size, size))


def simulate_irdis_dpi_night(
    out_dir: str | Path,
    *,
    seed: int = 0,
    scale: str | SimulationScale = "small",
    n_cycles: int = 4,
    ring: PolarisedRing = DEFAULT_RING,
    ip_q: float = 0.01,
    ip_u: float = -0.005,
    instrument: str = "mueller",
    tracking: str = "PUPIL",
    posang_deg: float = 0.0,
    target: Target = FIFTY_ONE_ERI,
    night: str = "2018-12-02",
    colon_in_names: bool = True,
    progress: Any = None,
) -> SimulatedNight:
    """Write a raw IRDIS DPI night into ``out_dir`` (see module doc) and return it with its truth.

    ``scale``: 'small' (128 x 256 px), 'medium' or 'full' (:data:`SCALES`) or a
    :class:`~hcdc.instruments.sphere.irdis.simulate.SimulationScale` (e.g. full size with one DIT
    per file, for IRDAP, which needs 1024 x 2048 frames); ``n_cycles`` HWP
    cycles (>= 1); ``ring`` the disc; ``instrument``: ``'mueller'`` (default: beams through the
    Mueller-matrix model of :mod:`hcdc.instruments.sphere.irdis.mueller`, so IP and cross-talk
    vary with the parallactic, altitude, HWP and derotator angles; the image turned in IRDAP's
    sense) or ``'ideal'`` (the 1.0 model: polarisation turning with the image, a fixed detector-
    frame IP ``ip_q``/``ip_u``, fractions of I, |p| < 0.2); ``tracking``: ``'PUPIL'`` or
    ``'FIELD'`` (Mueller model only; derotator position angle ``posang_deg``). Raises
    ``ValueError`` on a bad parameter (message names it).
    """
    if instrument not in ("mueller", "ideal"):
        raise ValueError(f"instrument must be 'mueller' or 'ideal', got {instrument!r}")
    tracking = str(tracking).upper()
    if tracking not in ("PUPIL", "FIELD"):
        raise ValueError(f"tracking must be PUPIL or FIELD, got {tracking!r}")
    if instrument == "ideal" and tracking != "PUPIL":
        raise ValueError("the ideal (1.0) instrument model is simulated in pupil tracking only")
    if isinstance(scale, str) and scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    scale_obj = SCALES[scale] if isinstance(scale, str) else scale
    if n_cycles < 1:
        raise ValueError(f"n_cycles must be >= 1, got {n_cycles}")
    if not (abs(ip_q) < 0.2 and abs(ip_u) < 0.2):
        raise ValueError(f"instrumental polarisation must be below 20 % of I, got ip_q={ip_q}, ip_u={ip_u}")
    if instrument == "mueller":
        ip_q = ip_u = 0.0  # the instrumental polarisation comes from the model
    field = scale_obj.field_width
    if ring.radius_px + 3.0 * ring.width_px > 0.45 * field:
        raise ValueError(
            f"ring at {ring.radius_px} px (width {ring.width_px} px) does not fit in the '{scale_obj.name}' "
            f"field of {field} px; use a larger scale or a smaller ring"
        )
    spec = replace(
        DPI_SEQUENCE,
        n_object_files=4 * n_cycles,
        polarimetry=DPIPolarimetry(
            ring=ring, ip_q=ip_q, ip_u=ip_u, instrument=instrument, tracking=tracking, posang_deg=posang_deg
        ),
    )
    result = simulate_irdis_night(
        out_dir,
        seed=seed,
        scale=scale_obj,
        companions=(),
        sequences=(spec,),
        target=target,
        night=night,
        colon_in_names=colon_in_names,
        progress=progress,
    )
    _write_polarimetric_truth(result, spec)
    return result


def _write_polarimetric_truth(night: SimulatedNight, spec: SequenceSpec) -> None:
    """Add the ring and the IP to the truth JSON (``polarimetry``) and ``RING_P`` to the truth FITS."""
    pol = spec.polarimetry
    assert pol is not None and night.truth_json is not None and night.truth_fits is not None
    transmission = tuple(t * r for t, r in zip(FIELD_THROUGHPUT, FIELD_RESPONSE, strict=True))
    night.polarimetry = {
        "filter": spec.filter,
        "ring": {
            "peak_adu_s": pol.ring.peak,
            "radius_px": pol.ring.radius_px,
            "width_px": pol.ring.width_px,
            "dolp": pol.ring.dolp,
            "asymmetry": pol.ring.asymmetry,
            "asymmetry_pa_deg": pol.ring.asymmetry_pa_deg,
        },
        "ip_q": pol.ip_q,
        "ip_u": pol.ip_u,
        "instrument": pol.instrument,
        "tracking": pol.tracking,
        "posang_deg": pol.posang_deg,
        "beams": {"ordinary": "left field (P0)", "extraordinary": "right field (P90)"},
        # What a reduction that keeps the detector's field response measures: the Stokes maps in
        # units of the mean beam transmission (throughput x response) times the sky.
        "beam_transmission": list(transmission),
        "stokes_scale": float(np.mean(transmission)),
        "hwp_sequence": [f.hwp for f in night.files if f.dpr_type == "OBJECT"],
    }
    write_truth_json(night)
    size = night.field_width
    hdu = fits.ImageHDU(ring_truth_map(pol.ring, size).astype(np.float32), name="RING_P")
    hdu.header["BUNIT"] = ("adu/s", "per px, at transmission 1")
    hdu.header["COMMENT"] = "true Q_phi (U_phi = 0), north up / east left, star at (n//2, n//2)"
    with fits.open(night.truth_fits, mode="append") as hdul:
        hdul.append(hdu)
