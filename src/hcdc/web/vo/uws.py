"""Asynchronous TAP (``/tap/async``) as UWS 1.1 jobs kept in the catalogue (``tap_jobs``).

A job is created PENDING (``303`` to its URL; ``PHASE=RUN`` at creation runs it at once, as
astroquery sends), runs in a background thread after ``PHASE=RUN`` (QUEUED -> EXECUTING ->
COMPLETED or ERROR), and its result is written under the storage root
(``tap-results/<job id>``), so it outlives the request and a server restart. Jobs are visible
to the account that created them only (anonymous jobs to anonymous callers). A job past its
``destruction`` time is deleted with its result when the job list is next read.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import delete, select, update

from hcdc.archive.access import Principal
from hcdc.archive.adql import AdqlError
from hcdc.archive.identifiers import vo_authority
from hcdc.archive.models import utcnow
from hcdc.archive.tap_jobs import RESULTS_DIR, TapJob, uploads_folder
from hcdc.archive.tap_upload import MAX_UPLOAD_BYTES, UploadError, parse_upload_parameter
from hcdc.web.auth import WebState, state_of
from hcdc.web.vo.tap import (
    STATEMENT_TIMEOUT_S,
    PartReader,
    check_parameters,
    form_parts,
    load_uploads,
    read_form,
    run_adql,
    service_base,
    tap_parameters,
    vo_principal,
)
from hcdc.web.vo.votable import error_document, render

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
DEFAULT_DESTRUCTION = dt.timedelta(days=7)
ACTIVE = ("QUEUED", "EXECUTING")
router = APIRouter()


def _job(request: Request, job_id: str) -> tuple[WebState, Principal, Any]:
    state = state_of(request)
    user = vo_principal(request, state)
    with state.catalogue.engine.connect() as conn:
        row = conn.execute(select(TapJob).where(TapJob.id == job_id)).first()
    if row is None or row.owner_user_id != user.id:
        raise HTTPException(404, f"no job {job_id!r}")
    return state, user, row


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


def _set(state: WebState, job_id: str, **values: Any) -> None:
    with state.catalogue.engine.begin() as conn:
        conn.execute(update(TapJob).where(TapJob.id == job_id).values(**values))


def _phase(state: WebState, job_id: str) -> str | None:
    with state.catalogue.engine.connect() as conn:
        return conn.scalar(select(TapJob.phase).where(TapJob.id == job_id))


def _execute(state: WebState, job_id: str, user: Principal, base: str) -> None:
    """Run a job (background thread): EXECUTING, then COMPLETED with its result file, or ERROR."""
    with state.catalogue.engine.connect() as conn:
        row = conn.execute(select(TapJob).where(TapJob.id == job_id)).first()
    if row is None or row.phase != "QUEUED":
        return
    _set(state, job_id, phase="EXECUTING", start_time=utcnow())
    try:
        query, maxrec, serialization = check_parameters(row.parameters)
        uploads = load_uploads(
            row.parameters.get("UPLOAD"),
            _stored_parts(state, job_id),
            user=user,
            state=state,
            base_url=base,
        )
        result = run_adql(
            state.catalogue.engine,
            query,
            user,
            state.clock(),
            maxrec=maxrec,
            authority=vo_authority(state.catalogue.settings),
            base_url=base,
            policy=state.policy,
            timeout_s=min(row.execution_duration or STATEMENT_TIMEOUT_S, STATEMENT_TIMEOUT_S),
            uploads=uploads,
        )
        body, media_type = render(result.fields, result.rows, serialization, overflow=result.overflow)
    except AdqlError as exc:
        if _phase(state, job_id) == "EXECUTING":
            _set(state, job_id, phase="ERROR", error=str(exc), end_time=utcnow())
        return
    folder = state.catalogue.storage_root / RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / job_id
    path.write_bytes(body)
    if _phase(state, job_id) == "EXECUTING":  # not aborted meanwhile
        _set(
            state,
            job_id,
            phase="COMPLETED",
            end_time=utcnow(),
            result_path=f"{RESULTS_DIR}/{job_id}",
            result_media_type=media_type,
            result_size=len(body),
            result_rows=len(result.rows),
            overflow=result.overflow,
        )


def _stored_parts(state: WebState, job_id: str) -> PartReader:
    """Reads the inline uploads kept for a job (see :func:`_keep_parts`)."""
    folder = uploads_folder(state.catalogue.storage_root, job_id)

    def read(name: str) -> bytes | None:
        path = folder / name.lower()
        return path.read_bytes() if _PART_NAME.match(name) and path.is_file() else None

    return read


def _keep_parts(state: WebState, job_id: str, upload: str | None, form: Any) -> None:
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
        data = parts(name) if name and _PART_NAME.match(name) else None
        if data is None:
            continue
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            return  # load_uploads refuses it at run time, naming the limit
        folder = uploads_folder(state.catalogue.storage_root, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name.lower()).write_bytes(data)


def _remove_files(state: WebState, job_id: str, result_path: str | None) -> None:
    if result_path:
        (state.catalogue.storage_root / result_path).unlink(missing_ok=True)
    folder = uploads_folder(state.catalogue.storage_root, job_id)
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)
        folder.rmdir()


_PART_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


def _start(state: WebState, job_id: str, user: Principal, base: str) -> None:
    _set(state, job_id, phase="QUEUED")
    threading.Thread(target=_execute, args=(state, job_id, user, base), daemon=True).start()


def _purge(state: WebState) -> None:
    now = utcnow()
    with state.catalogue.engine.begin() as conn:
        expired = conn.execute(select(TapJob.id, TapJob.result_path).where(TapJob.destruction < now)).all()
        for job in expired:
            _remove_files(state, job.id, job.result_path)
        if expired:
            conn.execute(delete(TapJob).where(TapJob.id.in_([j.id for j in expired])))


async def _form(request: Request) -> dict[str, str]:
    if request.method != "POST":
        return {}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/tap/async", include_in_schema=False)
def job_list(request: Request) -> Response:
    state = state_of(request)
    user = vo_principal(request, state)
    _purge(state)
    phases = {p.upper() for p in request.query_params.getlist("PHASE")}
    with state.catalogue.engine.connect() as conn:
        rows = conn.execute(
            select(TapJob)
            .where(TapJob.owner_user_id.is_(None) if user.id is None else TapJob.owner_user_id == user.id)
            .order_by(TapJob.creation_time.desc())
        ).all()
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
    job_id = secrets.token_hex(8)
    now = utcnow()
    run_id = params.pop("RUNID", None)
    phase = params.pop("PHASE", "").upper()
    with state.catalogue.engine.begin() as conn:
        conn.execute(
            TapJob.__table__.insert().values(
                id=job_id,
                owner_user_id=user.id,
                owner_name=None if user.id is None else user.name,
                phase="PENDING",
                run_id=run_id,
                parameters=params,
                creation_time=now,
                execution_duration=STATEMENT_TIMEOUT_S,
                destruction=now + DEFAULT_DESTRUCTION,
                overflow=False,
            )
        )
    _keep_parts(state, job_id, params.get("UPLOAD"), form)
    base = service_base(request)
    if phase == "RUN":
        _start(state, job_id, user, base)
    return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)


@router.get("/tap/async/{uws_job}", include_in_schema=False)
def get_job(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    state, _, row = _job(request, job_id)
    wait = request.query_params.get("WAIT")
    if wait is not None and row.phase in ("PENDING", *ACTIVE):
        try:
            seconds = float(wait)
        except ValueError:
            seconds = 0.0
        limit = time.monotonic() + (60.0 if seconds < 0 else min(seconds, 60.0))
        start_phase = row.phase
        while time.monotonic() < limit and _phase(state, job_id) == start_phase:
            time.sleep(0.1)
        state, _, row = _job(request, job_id)
    return _xml(job_document(row, service_base(request)))


def _delete(state: WebState, row: Any, base: str) -> Response:
    _remove_files(state, row.id, row.result_path)
    with state.catalogue.engine.begin() as conn:
        conn.execute(delete(TapJob).where(TapJob.id == row.id))
    return RedirectResponse(f"{base}/tap/async", status_code=303)


@router.post("/tap/async/{uws_job}", include_in_schema=False)
async def post_job(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    state, _, row = _job(request, job_id)
    form = {k.upper(): v for k, v in (await _form(request)).items()}
    if form.get("ACTION", "").upper() == "DELETE":
        return _delete(state, row, service_base(request))
    raise HTTPException(400, "POST to a job takes ACTION=DELETE")


@router.delete("/tap/async/{uws_job}", include_in_schema=False)
def delete_job(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    state, _, row = _job(request, job_id)
    return _delete(state, row, service_base(request))


@router.api_route("/tap/async/{uws_job}/phase", methods=["GET", "POST"], include_in_schema=False)
async def job_phase(request: Request, uws_job: str) -> Response:
    job_id = uws_job
    state, user, row = _job(request, job_id)
    if request.method == "GET":
        return Response(row.phase, media_type="text/plain")
    phase = {k.upper(): v for k, v in (await _form(request)).items()}.get("PHASE", "").upper()
    base = service_base(request)
    if phase == "RUN":
        if row.phase == "PENDING":
            _start(state, job_id, user, base)
    elif phase == "ABORT":
        if row.phase in ("PENDING", *ACTIVE):
            _set(state, job_id, phase="ABORTED", end_time=utcnow())
    else:
        raise HTTPException(400, "PHASE must be RUN or ABORT")
    return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)


def _timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


@router.api_route("/tap/async/{uws_job}/{item}", methods=["GET", "POST"], include_in_schema=False)
async def job_item(request: Request, uws_job: str, item: str) -> Response:
    job_id = uws_job
    state, _, row = _job(request, job_id)
    base = service_base(request)
    form = {k.upper(): v for k, v in (await _form(request)).items()}
    if item == "executionduration":
        if request.method == "POST":
            try:
                seconds = int(form.get("EXECUTIONDURATION", ""))
            except ValueError:
                raise HTTPException(400, "EXECUTIONDURATION must be an integer number of seconds") from None
            _set(state, job_id, execution_duration=max(0, min(seconds, STATEMENT_TIMEOUT_S)))
            return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)
        return Response(str(row.execution_duration), media_type="text/plain")
    if item == "destruction":
        if request.method == "POST":
            try:
                when = _timestamp(form.get("DESTRUCTION", ""))
            except ValueError:
                raise HTTPException(400, "DESTRUCTION must be an ISO 8601 date") from None
            _set(state, job_id, destruction=when)
            return RedirectResponse(f"{base}/tap/async/{job_id}", status_code=303)
        return Response(_ts(row.destruction) or "", media_type="text/plain")
    if item == "parameters":
        if request.method == "POST":
            if row.phase != "PENDING":
                raise HTTPException(409, "parameters can only change while the job is PENDING")
            params = dict(row.parameters)
            run_id = form.pop("RUNID", None)
            params.update(form)
            _set(state, job_id, parameters=params, **({"run_id": run_id} if run_id is not None else {}))
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
    state, _, row = _job(request, job_id)
    if row.phase != "COMPLETED" or not row.result_path:
        raise HTTPException(404, f"job {job_id} has no result (phase {row.phase})")
    path: Path = state.catalogue.storage_root / row.result_path
    return FileResponse(path, media_type=row.result_media_type)


__all__ = ["job_document", "router"]
