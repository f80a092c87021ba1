"""Who is asking: session cookies, personal API tokens, CSRF tokens; the login rate limit
(:class:`hcdc.archive.ratelimit.LoginLimiter`, in the catalogue, shared by every worker process).

The web layer never decides rights: it only finds out *who* asks (a
:class:`~hcdc.archive.access.Principal`) and hands an
:class:`~hcdc.archive.access.AccessContext` to the routes, which ask it.

* ``Authorization: Bearer hcdc_...``: a personal token (``hcdc user token``); a token that is
  unknown, revoked or expired is refused (401), it never falls back to anonymous.
* Otherwise the session cookie (signed, HttpOnly, SameSite=Lax; ``Secure`` when the portal is
  served over https): it holds the account id, re-read on every request so that a disabled
  account loses its session at once (rule R0), and the session's CSRF token.
* Otherwise the public account (``public``), which sees exactly what anonymous sees.

CSRF: every form carries the session's token (``csrf_token`` field); a cookie-authenticated
API call that writes sends it as the ``X-CSRF-Token`` header. Token-authenticated calls need
none (a browser never attaches a bearer token by itself).
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import inspect
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy import Connection, bindparam, select
from starlette.concurrency import run_in_threadpool

from hcdc.archive.access import ANONYMOUS, AccessContext, Policy, Principal, principal_of
from hcdc.archive.access_models import User
from hcdc.archive.accounts import authenticate_token_use
from hcdc.archive.db import Catalogue
from hcdc.archive.ratelimit import LoginLimiter
from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

SESSION_COOKIE = "hcdc_session"
SESSION_MAX_AGE_S = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "web-secret.key"


def load_secret_key(root: Path) -> str:
    """The key that signs session cookies: ``$HCDC_WEB_SECRET_KEY``, else ``<root>/web-secret.key``
    (created once, mode 0600, shared by every worker process of the server)."""
    from_env = os.environ.get("HCDC_WEB_SECRET_KEY")
    if from_env:
        return from_env
    path = Path(root) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


_PUBLIC_ACCOUNT = select(User).where(User.name == "public")  # built once: every anonymous request
_ACCOUNT_BY_ID = select(User).where(User.id == bindparam("uid"))


@dataclass
class WebState:
    """What every request needs: the open catalogue, the rules' numbers, the clock."""

    catalogue: Catalogue
    policy: Policy
    clock: Callable[[], dt.datetime]
    secure_cookies: bool = False
    limiter: LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        # failed sign-ins live in the catalogue: every worker process of the server counts them
        self.limiter = LoginLimiter(self.catalogue.engine)

    def public_principal(self, conn: Connection) -> Principal:
        row = conn.execute(_PUBLIC_ACCOUNT).first()
        return principal_of(row) if row is not None else ANONYMOUS


def state_of(request: Request) -> WebState:
    return request.app.state.hcdc


class Viewer:
    """The asking user, an open read connection and the access decisions for both.

    Resolved on first use (:meth:`resolve`: the connection opened, the principal authenticated,
    the :class:`~hcdc.archive.access.AccessContext` made), in the thread that runs the endpoint:
    with :class:`ViewerRoute`, a synchronous endpoint authenticates, reads and releases its
    connection in one worker-thread call instead of three (set-up, endpoint, tear-down; each
    hand-over costs CPU, benchmarks/RESULTS.md). Nothing is shared between requests: every
    request authenticates again and decides with its own user and clock.
    """

    def __init__(self, request: Request, state: WebState) -> None:
        self.request, self.state = request, state
        self._conn: Connection | None = None
        self._resolved: tuple[Principal, Connection, AccessContext, str] | None = None

    def resolve(self) -> Viewer:
        """Authenticate (401 for a bad token) and open the request's connection, once."""
        if self._resolved is None:
            conn = self.state.catalogue.read_connection()  # PostgreSQL: autocommit, see there
            try:
                user, via = resolve_principal(self.request, self.state, conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.request.state.principal = user
            # one request reads: its context remembers each decision (a product page asks several times)
            access = AccessContext(conn, user, self.state.clock(), self.state.policy, memo=True)
            self._resolved = (user, conn, access, via)
        return self

    @property
    def user(self) -> Principal:
        return self.resolve()._resolved[0]  # type: ignore[index]

    @property
    def conn(self) -> Connection:
        return self.resolve()._resolved[1]  # type: ignore[index]

    @property
    def access(self) -> AccessContext:
        return self.resolve()._resolved[2]  # type: ignore[index]

    @property
    def via(self) -> str:
        """How the user was authenticated: "token", "session" or "anonymous"."""
        return self.resolve()._resolved[3]  # type: ignore[index]

    @property
    def open(self) -> bool:
        return self._conn is not None

    def release(self) -> None:
        """Close the request's connection (it goes back to the pool); idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def signed_in(self) -> bool:
        return self.via != "anonymous"

    @property
    def catalogue(self) -> ProcessingCatalogue:
        """The catalogue facade (registry, datastore, provenance, the user's writes, the
        processing queue) as this request's user sees it, on the request's connection and
        decisions; writes open their own write transactions."""
        return self.state.catalogue.for_access(self.access, ProcessingCatalogue)  # type: ignore[return-value]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPException(
            401, "Authorization header must be 'Bearer <token>'", {"WWW-Authenticate": "Bearer"}
        )
    return value.strip()


def resolve_principal(request: Request, state: WebState, conn: Connection) -> tuple[Principal, str]:
    """The principal of this request and how it was authenticated (see the module docstring).

    Reads on ``conn``; a token's use is recorded (``last_used_at``, at most once a minute) and
    committed there; a request that wrote nothing goes on reading in the same transaction (no
    COMMIT and BEGIN round trips to the database).
    """
    secret = _bearer(request)
    if secret is not None:
        principal, written = authenticate_token_use(conn, secret, now=state.clock())
        if written:
            conn.commit()  # the token's last use; the request then reads in a new transaction
        if principal is None:
            raise HTTPException(401, "invalid, revoked or expired token", {"WWW-Authenticate": "Bearer"})
        return principal, "token"
    uid = request.session.get("uid")
    if isinstance(uid, int):
        row = conn.execute(_ACCOUNT_BY_ID, {"uid": uid}).first()
        if row is not None and row.is_active:
            return principal_of(row), "session"
        request.session.pop("uid", None)  # disabled or deleted account: the session ends
    return state.public_principal(conn), "anonymous"


async def viewer(request: Request) -> AsyncIterator[Viewer]:
    """FastAPI dependency: the :class:`Viewer` of this request (one connection, closed afterwards).

    On a :class:`ViewerRoute` the endpoint's wrapper authenticates before the endpoint runs and
    releases the connection when it returns, in the endpoint's worker thread; elsewhere it is
    done here, each in a worker thread. Either way the request is authenticated before its
    endpoint runs."""
    who = Viewer(request, state_of(request))
    if not isinstance(request.scope.get("route"), ViewerRoute):
        await run_in_threadpool(who.resolve)
    try:
        yield who
    finally:
        if who.open:  # an async endpoint's, a streamed response's, or an error's
            await run_in_threadpool(who.release)


def _viewers(arguments: dict[str, Any]) -> list[Viewer]:
    return [value for value in arguments.values() if isinstance(value, Viewer)]


def _with_viewer(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` that authenticates its :class:`Viewer` first and, when synchronous, releases
    its connection when it returns (in the same worker-thread call), unless it streams its
    response (the stream may still read)."""
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            for who in _viewers(kwargs):
                await run_in_threadpool(who.resolve)
            return await endpoint(*args, **kwargs)

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        viewers = _viewers(kwargs)
        try:
            for who in viewers:
                who.resolve()
            result = endpoint(*args, **kwargs)
        except BaseException:
            for who in viewers:
                who.release()
            raise
        if not isinstance(result, StreamingResponse):
            for who in viewers:
                who.release()
        return result

    return run


class ViewerRoute(APIRoute):
    """The routes of hcdc's routers (``APIRouter(route_class=ViewerRoute)``): an endpoint with a
    :func:`viewer` runs its authentication, its reads and its connection's release in one
    worker-thread call (:func:`_with_viewer`). Same parameters, dependencies and OpenAPI
    description as a plain route (FastAPI reads the wrapped endpoint's signature)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _with_viewer(endpoint), **kwargs)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 unless ``submitted`` is this session's CSRF token."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


def check_api_write(request: Request, who: Viewer) -> None:
    """Writes through the API: token calls go ahead; session calls need the CSRF header."""
    if who.via == "token":
        return
    if who.via == "anonymous":
        raise HTTPException(
            401, "sign in or send 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
        )
    check_csrf(request, request.headers.get(CSRF_HEADER))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE_S",
    "LoginLimiter",
    "Viewer",
    "ViewerRoute",
    "WebState",
    "check_api_write",
    "check_csrf",
    "client_address",
    "csrf_token",
    "load_secret_key",
    "resolve_principal",
    "state_of",
    "viewer",
]
