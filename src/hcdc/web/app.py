"""The hcdc web application: portal pages (``/``) and the REST API (``/api/v1``).

:func:`create_app` opens a data centre and returns a FastAPI application; ``hcdc serve`` runs
it with uvicorn. Everything is served from the installed package (templates, CSS, the portal's
script, plotly's JavaScript): the portal works offline.

Security headers on every response: a Content-Security-Policy allowing only this origin's
scripts (no inline script), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy: same-origin``, ``Cross-Origin-Opener-Policy: same-origin`` and, over https,
``Strict-Transport-Security``. Responses of signed-in users and of the API are not cached.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hcdc import __version__
from hcdc.archive.access import Policy, utc_naive
from hcdc.archive.db import Catalogue, open_data_centre
from hcdc.archive.models import utcnow
from hcdc.web.auth import SESSION_COOKIE, SESSION_MAX_AGE_S, WebState, load_secret_key

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class RetryLostConnection:
    """Pure ASGI middleware: a GET or HEAD request whose database connection turns out to be
    dead (PostgreSQL restarted, its backend terminated) runs once more, on a new connection,
    provided nothing of its response was sent yet.

    The pool pings a connection before use only after it sat idle
    (:func:`hcdc.archive.db.make_engine`: a ping per request cost ~0.3 ms of the ~5 ms of server
    CPU a request takes), so after a restart the first statement on each pooled connection fails;
    SQLAlchemy then flags the error ``connection_invalidated`` and replaces every connection
    pooled before it. Reading is safe to repeat, so the reader gets the answer instead of a 500;
    a write (POST, PUT, DELETE) is not repeated: it fails as before, and its transaction was
    rolled back with the connection. The request's body messages are replayed to the second run.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        started = False

        async def recording() -> Message:
            message = await receive()
            received.append(message)
            return message

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, recording, watching)
        except DBAPIError as exc:
            if started or not exc.connection_invalidated:
                raise
            replay = iter(received)

            async def replaying() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, replaying, send)


class SecurityHeaders:
    """Pure ASGI middleware: adds :data:`SECURITY_HEADERS` (and HSTS when ``hsts``) to every
    response, and ``Cache-Control: no-store`` to the API's and to signed-in users' responses.

    Not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs every request in an
    extra task with memory streams, ~10 % of the CPU time of a product page (py-spy,
    benchmarks/RESULTS.md). It must sit inside the session middleware, which sets
    ``scope["session"]``.
    """

    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app, self.hsts = app, hsts
        self.fixed = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
        if hsts:
            self.fixed.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in self.fixed:
                    if name not in present:
                        headers.append((name, value))
                private = scope["path"].startswith("/api/") or "uid" in scope.get("session", {})
                if private and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def plotly_js_path() -> Path:
    """plotly.min.js of the installed plotly package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def iter_routes(app: FastAPI) -> Iterator[BaseRoute]:
    """Every route of the application, those of included routers too (newer FastAPI versions
    keep included routers as one lazy entry of ``app.routes``)."""

    def walk(routes: list[BaseRoute], prefix: str) -> Iterator[BaseRoute]:
        for route in routes:
            original = getattr(route, "original_router", None)
            if original is not None:
                context_prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
                yield from walk(original.routes, prefix + context_prefix)
            elif prefix:
                raise NotImplementedError(
                    "routers included with a prefix: build them with APIRouter(prefix=...)"
                )
            else:
                yield route

    yield from walk(list(app.routes), "")


def create_app(
    catalogue_root: str | Path | None = None,
    *,
    catalogue: Catalogue | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    secure_cookies: bool = False,
    secret_key: str | None = None,
) -> FastAPI:
    """The web application of the data centre in ``catalogue_root`` (or of an open ``catalogue``).

    ``clock`` returns "now" (naive UTC) for every access decision: the default is the real clock;
    tests pass a fixed date to ask who sees what before and after a release. ``secure_cookies``
    marks the session cookie ``Secure`` (set it when the portal is served over https).
    """
    if catalogue is None:
        catalogue = open_data_centre(catalogue_root)
    state = WebState(
        catalogue=catalogue,
        policy=Policy.from_settings(catalogue.settings),
        clock=(lambda: utc_naive(clock())) if clock is not None else utcnow,
        secure_cookies=secure_cookies,
    )
    app = FastAPI(
        title="hcdc",
        version=__version__,
        description="REST API of an hcdc data centre: search, products, downloads, reductions. "
        "Authenticate with 'Authorization: Bearer <token>' (hcdc user token NAME).",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN: not offline
        redoc_url=None,
    )
    app.state.hcdc = state

    app.add_middleware(SecurityHeaders, hsts=secure_cookies)
    # added after the headers middleware, so it wraps it: request.session is set there
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key or load_secret_key(catalogue.settings.root),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=secure_cookies,
    )
    app.add_middleware(RetryLostConnection)  # outermost of hcdc's: a retry runs the whole request again

    from hcdc.web import (
        admin,
        admin_access,
        api,
        batches,
        interferometry,
        interferometry_pages,
        monitoring,
        portal,
        rdi,
        review,
        tdb,
        tokens,
    )

    app.include_router(api.router)
    app.include_router(interferometry.router)
    app.include_router(tdb.router)
    app.include_router(portal.router)
    app.include_router(interferometry_pages.router)
    app.include_router(admin.router)
    app.include_router(tokens.router)
    app.include_router(admin_access.router)
    app.include_router(review.router)
    app.include_router(monitoring.router)
    app.include_router(batches.router)
    app.include_router(rdi.router)

    from hcdc.web.vo import examples, tap, uws  # the VO services (TAP, UWS, VOSI): docs/vo.md

    app.include_router(tap.router)
    app.include_router(uws.router)
    app.include_router(examples.router)

    from hcdc.web.vo import datalink, registry, scs, sia

    app.include_router(datalink.router)
    app.include_router(registry.router)
    app.include_router(scs.router)
    app.include_router(sia.router)
    static = Path(__file__).parent / "static"
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/static-lib/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript")

    @app.exception_handler(portal.PortalError)
    async def portal_error(request: Request, exc: portal.PortalError) -> Response:
        return portal.error_page(request, exc)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    return app


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "RetryLostConnection",
    "create_app",
    "iter_routes",
    "plotly_js_path",
]
