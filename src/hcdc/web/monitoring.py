"""Monitoring pages of the portal, for the data-centre team (admins and operators only, rule R1
through :meth:`hcdc.archive.access.AccessContext.can_monitor`; others get 401/403 like the other
administration pages):

* ``/admin/monitoring/night/{night}``: a night's AO conditions (SPARTA seeing, zenith seeing,
  tau0, Strehl against UTC time) with its science sequences marked, drawn by plotly in the
  browser (plotly served by the portal, data in a JSON ``<script>`` element: no inline script),
  and the sequence table (:func:`hcdc.archive.telemetry.night_overview`);
* ``/admin/monitoring/report?from=&to=``: the monitoring report of a period (missing calibrations,
  conditions outside thresholds, failed jobs, centring fall-backs;
  :func:`hcdc.archive.monitoring_report.monitoring_report`), ``&format=csv`` the problem rows as
  the CSV ``hcdc monitor report --csv`` writes;
* ``/admin/monitoring/contrast?wavelength=&factor=&nsigma=``: contrast versus conditions across
  the archive with the expected-contrast model and the flagged products
  (:func:`hcdc.archive.telemetry.expected_contrast`), plotly: measured against expected contrast
  per separation, and contrast against seeing and tau0;
* ``/admin/monitoring/programmes?programme=``: the programme overview
  (:func:`hcdc.archive.programme_overview.programme_overview`);
* ``/admin/monitoring/astrometry``: the measured True North and plate-scale values against time,
  with the constants the pipeline assumes (:func:`hcdc.archive.astrometry_monitor.astrometric_series`)
  and each series' drift per year, drawn as its fitted line
  (:func:`~hcdc.archive.astrometry_monitor.astrometric_trend`).

Both show what the signed-in staff member sees, i.e. everything (R1), at the app's clock: the
pages ask the catalogue's monitoring sub-facade (``who.catalogue.monitoring``,
:mod:`hcdc.archive.catalogue_monitoring`) on the request's connection and decisions.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from hcdc.archive.access import datetime_of_mjd
from hcdc.archive.monitoring_report import Thresholds, problem_rows, problems_csv
from hcdc.archive.telemetry import NightOverview
from hcdc.web.auth import Viewer, ViewerRoute, viewer
from hcdc.web.portal import PortalError, render

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)

#: longest period one report page covers (nights): each dataset reads its SPARTA files
MAX_REPORT_NIGHTS = 92
#: a report without dates covers the week ending on the app clock's date
DEFAULT_REPORT_NIGHTS = 7


def _require_staff(who: Viewer) -> None:
    decision = who.access.can_monitor()
    if not decision:
        raise PortalError(403 if who.signed_in else 401, f"not allowed ({decision.rule}): {decision.reason}")


def _iso(mjd: float | None) -> str | None:
    """An MJD as an ISO UTC time to the second (plotly reads it as a date axis)."""
    return None if mjd is None else datetime_of_mjd(mjd).isoformat(timespec="seconds")


def night_chart(overview: NightOverview) -> dict[str, Any]:
    """The chart data of a night: time series (UTC ISO times; seeing in arcsec, tau0 in ms,
    Strehl) with non-finite samples as null, and the science sequences' time spans."""
    series = overview.to_dict()["series"]
    tau0_ms = [None if v is None else v * 1e3 for v in series.get("tau0_s", [])]
    return {
        "night": overview.night.isoformat(),
        "time": [_iso(m) for m in series.get("mjd", [])],
        "seeing": series.get("seeing", []),
        "seeing_zenith": series.get("seeing_zenith", []),
        "tau0_ms": tau0_ms,
        "strehl": series.get("strehl", []),
        "ambient": {
            "time": [_iso(m) for m, _ in overview.ambient],
            "seeing": [v for _, v in overview.ambient],
        },
        "sequences": [
            {
                "label": f"d{s['dataset_id']} {s['target'] or ''} {s['filter'] or ''}".strip(),
                "start": _iso(s["mjd_start"]),
                "end": _iso(s["mjd_end"]),
            }
            for s in overview.sequences
        ],
    }


@router.get("/admin/monitoring/night/{night}", response_class=HTMLResponse)
def night_page(request: Request, night: dt.date, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_staff(who)
    overview = who.catalogue.monitoring.night(night)
    chart = night_chart(overview)
    sequences = [s | {"start": _iso(s["mjd_start"]), "end": _iso(s["mjd_end"])} for s in overview.sequences]
    return render(
        request,
        who,
        "monitoring_night.html",
        night=night,
        previous=night - dt.timedelta(days=1),
        following=night + dt.timedelta(days=1),
        summary=overview.summary(),
        sequences=sequences,
        telemetry_files=overview.telemetry_files,
        problems=overview.problems,
        chart_json=json.dumps(chart) if chart["time"] else None,
    )


def _date(value: str | None, name: str, default: dt.date) -> dt.date:
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PortalError(422, f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


def _number(value: str | None, name: str, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError:
        raise PortalError(422, f"{name} must be a number, got {value!r}") from None


@router.get("/admin/monitoring/report")
def report_page(request: Request, who: Viewer = Depends(viewer)) -> Response:
    _require_staff(who)
    q = request.query_params
    last = _date(q.get("to"), "to", who.state.clock().date())
    first = _date(q.get("from"), "from", last - dt.timedelta(days=DEFAULT_REPORT_NIGHTS - 1))
    if last < first:
        raise PortalError(422, f"the period ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_REPORT_NIGHTS:
        raise PortalError(
            422, f"a report covers at most {MAX_REPORT_NIGHTS} nights ({first} to {last} asked)"
        )
    defaults = Thresholds()
    limits = Thresholds(
        strehl_min=_number(q.get("strehl_min"), "strehl_min", defaults.strehl_min),
        seeing_max_arcsec=_number(q.get("seeing_max"), "seeing_max", defaults.seeing_max_arcsec),
        tau0_min_s=_number(q.get("tau0_min_ms"), "tau0_min_ms", defaults.tau0_min_s * 1e3) / 1e3,
    )
    report = who.catalogue.monitoring.report(first, last, limits)
    problems = problem_rows(report)
    if q.get("format") == "csv":
        return Response(
            problems_csv(problems),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="monitoring-{first}-{last}.csv"'},
        )
    if q.get("format") not in (None, "", "html"):
        raise PortalError(422, f"format must be html or csv, got {q.get('format')!r}")
    query = f"from={first}&to={last}&strehl_min={limits.strehl_min:g}&seeing_max={limits.seeing_max_arcsec:g}"
    query += f"&tau0_min_ms={limits.tau0_min_s * 1e3:g}"
    return render(
        request,
        who,
        "monitoring_report.html",
        report=report,
        problems=problems,
        first=first,
        last=last,
        limits=limits,
        csv_url=f"/admin/monitoring/report?{query}&format=csv",
    )


def contrast_chart(result: dict[str, Any]) -> dict[str, Any]:
    """Chart data of the contrast page: per product its label, seeing (arcsec), tau0 (ms), field
    rotation (deg) and per separation the measured and expected contrast and the flag."""
    seps = list(result["separations"])
    products = []
    for p in result["products"]:
        products.append(
            {
                "label": f"p{p['product_id']} {p['target'] or ''} {p['night'] or ''}".strip()
                + (" (selected frames)" if p["variant"] else ""),
                "seeing": p["seeing_median_arcsec"],
                "tau0_ms": None if p["tau0_median_s"] is None else p["tau0_median_s"] * 1e3,
                "rotation": p["field_rotation_deg"],
                "measured": [e["measured"] for e in p["expected"]["separations"]],
                "expected": [e["expected"] for e in p["expected"]["separations"]],
                "flagged": [e["flagged"] for e in p["expected"]["separations"]],
            }
        )
    return {"separations": seps, "products": products}


@router.get("/admin/monitoring/contrast", response_class=HTMLResponse)
def contrast_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_staff(who)
    q = request.query_params
    defaults = Thresholds()
    factor = _number(q.get("factor"), "factor", defaults.contrast_factor)
    nsigma = _number(q.get("nsigma"), "nsigma", defaults.contrast_nsigma)
    wavelength = _number(q.get("wavelength"), "wavelength", 0)
    if factor < 1 or nsigma <= 0 or wavelength < 0 or wavelength != int(wavelength):
        raise PortalError(422, "factor must be >= 1, nsigma > 0 and wavelength an index >= 0")
    result = who.catalogue.monitoring.expected_contrast(int(wavelength), factor, nsigma)
    chart = contrast_chart(result)
    return render(
        request,
        who,
        "monitoring_contrast.html",
        result=result,
        factor=factor,
        nsigma=nsigma,
        wavelength=int(wavelength),
        chart_json=json.dumps(chart) if chart["products"] else None,
    )


@router.get("/admin/monitoring/programmes", response_class=HTMLResponse)
def programmes_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_staff(who)
    programme = request.query_params.get("programme") or None
    entries = who.catalogue.monitoring.programmes(programme)
    if programme is not None and not entries:
        raise PortalError(404, f"no science dataset of programme {programme!r}")
    return render(request, who, "monitoring_programmes.html", programmes=entries, programme=programme)


@router.get("/admin/monitoring/astrometry", response_class=HTMLResponse)
def astrometry_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_staff(who)
    nsigma = _number(request.query_params.get("nsigma"), "nsigma", 3.0)
    if nsigma <= 0:
        raise PortalError(422, "nsigma must be > 0")
    series = who.catalogue.monitoring.astrometry(nsigma=nsigma)
    trend = who.catalogue.monitoring.astrometry_trend(nsigma=nsigma)  # drift per series
    chart = {"assumed": series["assumed"], "measurements": series["measurements"], "trend": trend["series"]}
    return render(
        request,
        who,
        "monitoring_astrometry.html",
        series=series,
        trend=trend,
        nsigma=nsigma,
        chart_json=json.dumps(chart) if series["measurements"] else None,
    )


__all__ = ["MAX_REPORT_NIGHTS", "contrast_chart", "night_chart", "router"]
