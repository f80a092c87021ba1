"""HCI-FITS <-> Target Data Base: import a file as target/observation/reduction/detections, and
export a reduction of a Level 2 product (its image, S/N map, contrast curve, detections).

Import (:func:`hcifits_to_exchange` then :func:`hcdc.archive.exchange.tdb_json.import_tdb`): the
file's target (TARGNAME, ALTNAMEn as aliases; RA_TARG/DEC_TARG with SC_BIB, PROPRA/PROPDEC with
PM_BIB, J/H/K_2MASS as values), one observation (``hcifits:<file name>``; date = the first image's
Observation_Start), one reduction (REDALGO, ORIGIN, DATE; detection limits of the first image
with NSIGMA), one detection per SOURCE_DETECTION candidate (values of the first image; every
image's values in ``extra``).

Export (:func:`export_reduction`): a reduction that came from an hcdc Level 2 product; the
SENSITIVITY_MAP is the product's contrast curve (first wavelength) at each pixel's separation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from hcdc.archive.exchange.hcifits import HciFits, HciFitsError, HciReduction, read_hcifits, write_hcifits
from hcdc.archive.exchange.tdb_json import FORMAT, VERSION
from hcdc.archive.pipeline_models import ProductFile
from hcdc.archive.tdb import MJD_TO_JD, detections_table
from hcdc.archive.tdb_models import Observation, Reduction, Target


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _first(values: list[float]) -> float | None:
    return _finite(values[0]) if values else None


def hcifits_to_exchange(content: HciFits, file_name: str) -> dict[str, Any]:
    """The TDB exchange dict (see :mod:`.tdb_json`) of one HCI-FITS file's content."""
    p = content.primary
    if not content.target:
        raise HciFitsError(f"{file_name}: no TARGNAME in the primary header")
    target: dict[str, Any] = {"name": content.target, "aliases": content.alt_names, "sources": {}}
    for key, card, source_card in (
        ("ra_deg", "RA_TARG", "SC_BIB"),
        ("dec_deg", "DEC_TARG", "SC_BIB"),
        ("pmra_masyr", "PROPRA", "PM_BIB"),
        ("pmdec_masyr", "PROPDEC", "PM_BIB"),
        ("mag_j", "J_2MASS", None),
        ("mag_h", "H_2MASS", None),
        ("mag_k", "K_2MASS", None),
    ):
        value = _finite(p.get(card)) if isinstance(p.get(card), int | float) else None
        if value is not None:
            target[key] = value
            cited = p.get(source_card) if source_card else "2MASS"
            target["sources"][key] = f"HCI-FITS {file_name}" + (f" ({cited})" if cited else "")
    first = content.images[0] if content.images else {}
    uid = f"hcifits:{file_name}"
    mjd = _finite(first.get("mjd_start"))
    observation = {
        "uid": uid,
        "date_jd": None if mjd is None else mjd + MJD_TO_JD,
        "instrument": p.get("INSTRUME"),
        "telescope": p.get("TELESCOP"),
        "filter": p.get("FILTER"),
        "pixel_scale_mas": None if p.get("PIXSCALE") is None else float(p["PIXSCALE"]) * 1000.0,
        "prog_id": None if p.get("PROPOSID") is None else str(p["PROPOSID"]),
        "origin": "import",
        "extra": {"images": content.images, "hcifits_warnings": content.warnings},
    }
    limits = content.limits[0] if content.limits else None
    reduction = {
        "uid": f"{uid}/reduction",
        "validated": True,  # published by the survey that made it
        "software": str(p.get("ORIGIN") or "") or None,
        "algorithm": content.algorithm,
        "date": str(p["DATE"]) + ("T00:00:00" if len(str(p["DATE"])) == 10 else "")
        if p.get("DATE")
        else None,
        "location": file_name,
        "detection_limits": None
        if limits is None
        else {
            "separation_mas": limits["separation_mas"],
            "contrast": limits["limit"],
            "nsigma": content.nsigma,
        },
        "detections": [],
    }
    wavelength = _finite(first.get("wavelength_um"))
    for cand in content.candidates:
        reduction["detections"].append(
            {
                "uid": f"{uid}/candidate/{cand.number}",
                "wavelength_um": wavelength,
                "filter": p.get("FILTER"),
                "magnitude": _first(cand.mag),
                "magnitude_err": _first(cand.mag_err),
                "contrast": _first(cand.contrast),
                "contrast_err": _first(cand.contrast_err),
                "snr": _first(cand.snr),
                "dra_mas": _first(cand.dra_mas),
                "dra_err_mas": _first(cand.dra_err_mas),
                "ddec_mas": _first(cand.ddec_mas),
                "ddec_err_mas": _first(cand.ddec_err_mas),
                "separation_mas": _first(cand.sep_mas),
                "separation_err_mas": _first(cand.sep_err_mas),
                "pa_deg": _first(cand.pa_deg),
                "pa_err_deg": _first(cand.pa_err_deg),
                "extra": {
                    "hcifits_candidate": cand.number,
                    "per_image": {
                        k: [None if not math.isfinite(v) else v for v in getattr(cand, k)]
                        for k in ("snr", "sep_mas", "pa_deg", "contrast", "mag")
                    },
                },
            }
        )
    observation["reductions"] = [reduction]
    target["observations"] = [observation]
    return {"format": FORMAT, "version": VERSION, "source": file_name, "targets": [target]}


def read_as_exchange(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return hcifits_to_exchange(read_hcifits(path), path.name)


# --------------------------------------------------------------------------------------------
# export


def _sensitivity_map(shape: tuple[int, int], separation_px: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """The 1-D contrast curve at each pixel's distance from the star (n//2, n//2); NaN outside."""
    ny, nx = shape
    yy, xx = np.indices(shape)
    r = np.hypot(yy - ny // 2, xx - nx // 2)
    good = np.isfinite(contrast)
    if not good.any():
        return np.full(shape, np.nan, np.float32)
    sep, con = separation_px[good], contrast[good]
    out = np.interp(r, sep, con, left=np.nan, right=np.nan)
    return out.astype(np.float32)


def export_reduction(conn: Connection, reduction_id: int, storage_root: Path, path: Path) -> Path:
    """Write the reduction ``reduction_id`` (from an hcdc Level 2 product) as HCI-FITS at ``path``."""
    from hcdc.science.postprocessing.products import read_product

    row = conn.execute(
        select(Reduction, Observation, Target)
        .join(Observation, Observation.id == Reduction.observation_id)
        .join(Target, Target.id == Observation.target_id)
        .where(Reduction.id == reduction_id)
    ).first()
    if row is None:
        raise HciFitsError(f"no reduction {reduction_id}")
    red, obs, target = row.Reduction, row.Observation, row.Target
    if red.product_id is None:
        raise HciFitsError(
            f"reduction {red.uid} has no Level 2 product (imported): HCI-FITS needs its images "
            "(REDUCED_DATA, SNR_MAP, SENSITIVITY_MAP)"
        )
    file_row = conn.execute(
        select(ProductFile.path)
        .where(ProductFile.product_id == red.product_id, ProductFile.media_type == "application/fits")
        .order_by(ProductFile.role != "product", ProductFile.id)
    ).first()
    if file_row is None:
        raise HciFitsError(f"product {red.product_id} of reduction {red.uid} has no FITS file")
    result = read_product(storage_root / file_row.path)
    curves = result.contrast
    if curves is None:
        raise HciFitsError(f"product {red.product_id} has no contrast curve: HCI-FITS needs detection limits")
    contrast = np.asarray(curves.contrast[0] if np.ndim(curves.contrast) == 2 else curves.contrast, float)
    sep_px = np.asarray(curves.separation_px, float)
    scale = result.pixel_scale_mas
    if not scale:
        raise HciFitsError(
            f"product {red.product_id} has no plate scale: separations cannot be written in arcsec"
        )
    detections = detections_table(conn, visible=Reduction.id == reduction_id)
    wavelengths = result.wavelengths
    reduction = HciReduction(
        target=target.name,
        image=result.image,
        snr_map=result.snr_map,
        sensitivity=_sensitivity_map(result.image.shape, sep_px, contrast),
        limit_separation_mas=[float(s) * scale for s in sep_px],
        limit_contrast=[float(c) for c in contrast],
        nsigma=float(curves.nsigma),
        image_unit=result.image_unit,
        algorithm=result.algorithm,
        pixel_scale_mas=scale,
        wavelength_um=None if wavelengths is None or len(wavelengths) == 0 else float(np.mean(wavelengths)),
        mjd_start=None if obs.date_jd is None else obs.date_jd - MJD_TO_JD,
        telescope=obs.telescope,
        instrument=obs.instrument,
        filter=obs.filter,
        ra_deg=target.ra_deg,
        dec_deg=target.dec_deg,
        pmra_masyr=target.pmra_masyr,
        pmdec_masyr=target.pmdec_masyr,
        magnitudes={"J": target.mag_j, "H": target.mag_h, "K": target.mag_k},
        detections=detections,
    )
    return write_hcifits(reduction, path)


__all__ = ["export_reduction", "hcifits_to_exchange", "read_as_exchange"]
