"""Asynchronous TAP (``/tap/async``) as UWS 1.1 jobs kept in the catalogue (``tap_jobs``).

A job is created PENDING (``303`` to its URL; ``PHASE=RUN`` at creation runs it at once, as
astroquery sends), runs in a background thread after ``PHASE=RUN`` (QUEUED -> EXECUTING ->
COMPLETED or ERROR), and its result is written under the storage root
(``tap-results/<job id>``), so it outlives the request and a server restart. Jobs are visible
to the account that created them only (anonymous jobs to anonymous callers). A job past its
``destruction`` time is deleted with its result when the job list is next read.

Every read and write of a job goes through the catalogue facade
(:attr:`hcdc.archive.catalogue.UserCatalogue.vo`: :class:`hcdc.archive.catalogue_vo.VoCatalogue`),
opened for the caller (:func:`hcdc.web.vo.tap.vo_catalogue`); another account's job is a 404,
as a missing one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from hcdc.archive.access import Principal
from hcdc.archive.adql import AdqlError
from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.catalogue_vo import VoCatalogue
from hcdc.archive.identifiers import vo_authority
from hcdc.archive.models import utcnow
from hcdc.archive.tap_upload import MAX_UPLOAD_BYTES, UploadError, parse_upload_parameter
from hcdc.web.auth import WebState, state_of
from hcdc.web.vo.tap import (
    STATEMENT_TIMEOUT_S,
    check_parameters,
    form_parts,
    load_uploads,
    open_vo,
    query_result,
    read_form,
    service_base,
    tap_parameters,
    vo_catalogue,
    vo_principal,
)
from hcdc.web.vo.votable import error_document, render

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
ACTIVE = ("QUEUED", "EXECUTING")
router = APIRouter()


def _job(vo: VoCatalogue, job_id: str) -> Any:
    """The caller's job (its row), 404 for another's or a missing one."""
    try:
        return vo.job(job_id)
    except NotFound:
        raise HTTPException(404, f"no job {job_id!r}") from None


def _ts(value: dt.datetime | None) -> str | None:
    return (
        None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _element(name: str, value: str | None) -> str:
    if value is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{escape(value)}</uws:{name}>"


def _parameters_xml(row: Any) -> str:
    items = "".join(
        f"<uws:parameter id={quoteattr(key.lower())}>{escape(str(value))}</uws:parameter>"
        for key, value in sorted(row.parameters.items())
    )
    return f"<uws:parameters>{items}</uws:parameters>"


def _results_xml(row: Any, base: str) -> str:
    if row.phase != "COMPLETED":
        return "<uws:results/>"
    href = f"{base}/tap/async/{row.id}/results/result"
    return f'<uws:results><uws:result id="result" xlink:href={quoteattr(href)}/></uws:results>'


NAMESPACES = (
    f'xmlns:uws="{UWS_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def job_document(row: Any, base: str) -> str:
    """The UWS 1.1 job document (every element present, xsi:nil where empty)."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:job {NAMESPACES} version="1.1">',
        _element("jobId", row.id),
        _element("runId", row.run_id) if row.run_id else "",
        _element("ownerId", row.owner_name),
        _element("phase", row.phase),
        _element("quote", None),
        _element("creationTime", _ts(row.creation_time)),
        _element("startTime", _ts(row.start_time)),
        _element("endTime", _ts(row.end_time)),
        _element("executionDuration", str(row.execution_duration)),
        _element("destruction", _ts(row.destruction)),
        _parameters_xml(row),
        _results_xml(row, base),
    ]
    if row.phase == "ERROR" and row.error:
        parts.append(
            f'<uws:errorSummary type="fatal" hasDetail="true"><uws:message>{escape(row.error)}</uws:message>'
            "</uws:errorSummary>"
        )
    parts.append("</uws:job>\n")
    return "".join(parts)


def _xml(body: str) -> Response:
    return Response(body, media_type="text/xml")


def _execute(state: WebState, job_id: str, user: Principal, base: str) -> None:
    """Run a job (background thread), through the facade opened for its owner: EXECUTING, then
    COMPLETED with its result file, or ERROR."""
    with open_vo(state, user) as vo:
        try:
            row = vo.job(job_id)
        except NotFound:
            return
        if row.phase != "QUEUED":
            return
        vo.update_job(job_id, phase="EXECUTING", start_time=utcnow())
        try:
            query, maxrec, serialization = check_parameters(row.parameters)
            uploads = load_uploads(row.parameters.get("UPLOAD"), vo.kept_upload(job_id), vo=vo, base_url=base)
            answer = vo.run_adql(
                query,
                maxrec=maxrec,
                authority=vo_authority(state.catalogue.settings),
                base_url=base,
                timeout_s=min(row.execution_duration or STATEMENT_TIMEOUT_S, STATEMENT_TIMEOUT_S),
                uploads=uploads,
            )
            result = query_result(answer)
            body, media_type = render(result.fields, result.rows, serialization, overflow=result.overflow)
        except AdqlError as exc:
            if vo.phase(job_id) == "EXECUTING":
                vo.update_job(job_id, phase="ERROR", error=str(exc), end_time=utcnow())
            return
        except NotFound:  # deleted meanwhile
            return
        try:
            result_path = vo.store_result(job_id, body)
        except NotFound:
            return
        if vo.phase(job_id) == "EXECUTING":  # not aborted meanwhile
            vo.update_job(
                job_id,
                phase="COMPLETED",
                end_time=utcnow(),
                result_path=result_path,
                result_media_type=media_type,
                result_size=len(body),
                result_rows=len(result.rows),
                overflow=result.overflow,
            )


def _keep_parts(vo: VoCatalogue, job_id: str, upload: str | None, form: Any) -> None:
    """Keep the multipart parts that UPLOAD names (``param:X``) with the job, so that they outlive
    the request that created it (the job may run much later). A malformed UPLOAD is kept as it
    is: the job fails with the reason when it runs (UWS: errors at run time)."""
    if not upload or not form:
        return
    try:
        refs = parse_upload_parameter([upload])
    except UploadError:
        return
    parts, total = form_parts(form), 0
    for ref in refs:
        name = ref.inline_part
        data = parts(name) if name else None
        if data is None:
            continue
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            return  # load_uploads refuses it at run time, naming the limit
        vo.keep_upload(job_id, name, data)


def _start(vo: VoCatalogue, state: WebState, job_id: str, user: Principal, base: str) -> None:
    vo.update_job(job_id, phase="QUEUED")
    threading.Thread(target=_execute, args=(state, job_id, user, base), daemon=True).start()


async def _form(request: Request) -> dict[str, str]:
    if request.method != "POST":
        return {}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/tap/async", include_in_schema=False)
def job_list(request: Request) -> Response:
    with vo_catalogue(request) as vo:
        rows = vo.jobs()
    phases = {p.upper() for p in request.query_params.getlist("PHASE")}
    base = service_base(request)
    refs = "".join(
        f"<uws:jobref id={quoteattr(r.id)} xlink:href={quoteattr(f'{base}/tap/async/{r.id}')}>"
        f"<uws:phase>{r.phase}</uws:phase></uws:jobref>"
        for r in rows
        if not phases or r.phase in phases
    )
    return _xml(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:jobs {NAMESPACES} version="1.1">{refs}</uws:jobs>\n'
    )


@router.post("/tap/async", include_in_schema=False)
async def create_job(request: Request) -> Response:
    state = state_of(request)
    user = vo_principal(request, state)
    try:
        form = await read_form(request)
    except UploadError as exc:
        return Response(error_document(str(exc)), status_code=413, media_type="application/x-votable+xml")
    params = tap_parameters(request, form)
    run_id = params.pop("RUNID", None)
    phase = params.pop("PHASE", "").upper()
    base = service_base(request)
    with open_vo(state, user) as vo:
        job_id = vo.create_job(params, run_id)
        _keep_parts(vo, job_id, params.get("UPLOAD"), form)
        if phase == "RUN":
            _start(vo, state, job_id, user, base)
    return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)


@router.get("/tap/async/{uws_job}", include_in_schema=False)
def get_job(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    with vo_catalogue(request) as vo:
        row = _job(vo, job_id)
        wait = request.query_params.get("WAIT")
        if wait is not None and row.phase in ("PENDING", *ACTIVE):
            try:
                seconds = float(wait)
            except ValueError:
                seconds = 0.0
            limit = time.monotonic() + (60.0 if seconds < 0 else min(seconds, 60.0))
            start_phase = row.phase
            while time.monotonic() < limit and vo.phase(job_id) == start_phase:
                time.sleep(0.1)
            row = _job(vo, job_id)
    return _xml(job_document(row, service_base(request)))


def _delete(vo: VoCatalogue, job_id: str, base: str) -> Response:
    vo.delete_job(job_id)
    return RedirectResponse(f"{base}/tap/async", status_code=303)


@router.post("/tap/async/{uws_job}", include_in_schema=False)
async def post_job(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    form = {k.upper(): v for k, v in (await _form(request)).items()}
    with vo_catalogue(request) as vo:
        _job(vo, job_id)
        if form.get("ACTION", "").upper() == "DELETE":
            return _delete(vo, job_id, service_base(request))
    raise HTTPException(400, "POST to a job takes ACTION=DELETE")


@router.delete("/tap/async/{uws_job}", include_in_schema=False)
def delete_job(request: Request, uws_job: str) -> Response:
    with vo_catalogue(request) as vo:
        _job(vo, uws_job)
        return _delete(vo, uws_job, service_base(request))


@router.api_route("/tap/async/{uws_job}/phase", methods=["GET", "POST"], include_in_schema=False)
async def job_phase(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    state = state_of(request)
    user = vo_principal(request, state)
    form = {k.upper(): v for k, v in (await _form(request)).items()}
    with open_vo(state, user) as vo:
        row = _job(vo, job_id)
        if request.method == "GET":
            return Response(row.phase, media_type="text/plain")
        phase = form.get("PHASE", "").upper()
        base = service_base(request)
        if phase == "RUN":
            if row.phase == "PENDING":
                _start(vo, state, job_id, user, base)
        elif phase == "ABORT":
            if row.phase in ("PENDING", *ACTIVE):
                vo.update_job(job_id, phase="ABORTED", end_time=utcnow())
        else:
            raise HTTPException(400, "PHASE must be RUN or ABORT")
    return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


@router.api_route("/tap/async/{uws_job}/{item}", methods=["GET", "POST"], include_in_schema=False)
async def job_item(request: Request, uws_job: str, item: str) -> Response:
    job_id = uws_job
    base = service_base(request)
    form = {k.upper(): v for k, v in (await _form(request)).items()}
    with vo_catalogue(request) as vo:
        row = _job(vo, job_id)
        if item == "executionduration":
            if request.method == "POST":
                try:
                    seconds = int(form.get("EXECUTIONDURATION", ""))
                except ValueError:
                    raise HTTPException(
                        400, "EXECUTIONDURATION must be an integer number of seconds"
                    ) from None
                vo.update_job(job_id, execution_duration=max(0, min(seconds, STATEMENT_TIMEOUT_S)))
                return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)
            return Response(str(row.execution_duration), media_type="text/plain")
        if item == "destruction":
            if request.method == "POST":
                try:
                    when = _timestamp(form.get("DESTRUCTION", ""))
                except ValueError:
                    raise HTTPException(400, "DESTRUCTION must be an ISO 8601 date") from None
                vo.update_job(job_id, destruction=when)
                return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)
            return Response(_ts(row.destruction) or "", media_type="text/plain")
        if item == "parameters":
            if request.method == "POST":
                if row.phase != "PENDING":
                    raise HTTPException(409, "parameters can only change while the job is PENDING")
                params = dict(row.parameters)
                run_id = form.pop("RUNID", None)
                params.update(form)
                vo.update_job(job_id, parameters=params, **({"run_id": run_id} if run_id is not None else {}))
                return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)
            return _xml(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:parameters {NAMESPACES}>'
                + _parameters_xml(row)[len("<uws:parameters>") :]
                + "\n"
            )
    if request.method != "GET":
        raise HTTPException(405, f"{item} is read-only")
    if item == "quote":
        return Response("", media_type="text/plain")
    if item == "owner":
        return Response(row.owner_name or "", media_type="text/plain")
    if item == "error":
        if row.phase != "ERROR":
            raise HTTPException(404, f"job {job_id} has no error (phase {row.phase})")
        return Response(error_document(row.error or "unknown error"), media_type="application/x-votable+xml")
    if item == "results":
        return _xml(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            + _results_xml(row, base).replace("<uws:results", f"<uws:results {NAMESPACES}", 1)
            + "\n"
        )
    raise HTTPException(404, f"no {item!r} in a job")


@router.get("/tap/async/{uws_job}/results/result", include_in_schema=False)
def job_result(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    with vo_catalogue(request) as vo:
        row = _job(vo, job_id)
        path = vo.result_file(job_id) if row.phase == "COMPLETED" and row.result_path else None
    if path is None:
        raise HTTPException(404, f"job {job_id} has no result (phase {row.phase})")
    return FileResponse(path, media_type=row.result_media_type)


__all__ = ["job_document", "router"]
