"""The "my tokens" page (``/my/tokens``): a signed-in user's personal API tokens.

Create (a label and a lifetime in days; the secret is shown once, on the page that answers the
creation, and never stored: only its SHA-256 is), list (prefix, label, state, dates; never a
secret) and revoke. The rights are rule A7 of :mod:`hcdc.archive.access` (own tokens; admins
any), checked by :mod:`hcdc.archive.accounts`, which also writes the audit log; the page reads
and writes through the request's catalogue facade (``who.catalogue``). Every form
carries the CSRF token; the page is never cached (signed-in pages are ``no-store``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hcdc.archive import accounts
from hcdc.archive.access import AccessDenied
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)

#: the longest lifetime the form offers (days); the default is the policy's ``token_days``
MAX_TOKEN_DAYS = 366


def _tokens_page(
    request: Request, who: Viewer, new: accounts.NewToken | None = None, status: int = 200
) -> Response:
    tokens = who.catalogue.my_tokens()
    return render(
        request,
        who,
        "tokens.html",
        status=status,
        tokens=tokens,
        new=new,
        default_days=min(who.state.policy.token_days, MAX_TOKEN_DAYS),
        max_days=MAX_TOKEN_DAYS,
    )


def _signed_in(who: Viewer) -> Response | None:
    if not who.signed_in:
        return RedirectResponse("/login?next=/my/tokens", status_code=303)
    return None


@router.get("/my/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, who: Viewer = Depends(viewer)) -> Response:
    return _signed_in(who) or _tokens_page(request, who)


def _days(raw: Any) -> int:
    try:
        days = int(str(raw).strip())
    except ValueError:
        raise PortalError(422, f"token lifetime must be a whole number of days, got {raw!r}") from None
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise PortalError(422, f"token lifetime must be 1 to {MAX_TOKEN_DAYS} days, got {days}")
    return days


def _write(action: Any) -> Any:
    """Run ``action()``, a write through the facade; refusals become error pages."""
    try:
        return action()
    except AccessDenied as exc:
        raise PortalError(403, str(exc)) from None
    except accounts.AccountError as exc:
        raise PortalError(422, str(exc)) from None


@router.post("/my/tokens", response_class=HTMLResponse)
async def create_token(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    if (redirect := _signed_in(who)) is not None:
        return redirect
    days = _days(form.get("days") or who.state.policy.token_days)
    label = str(form.get("label") or "").strip()[:64] or None
    new = _write(lambda: who.catalogue.create_token(label=label, days=days))  # the list shows it after
    # the answer itself shows the secret (no redirect: the secret is never kept anywhere to show later)
    return _tokens_page(request, who, new=new, status=201)


@router.post("/my/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    if (redirect := _signed_in(who)) is not None:
        return redirect
    _write(lambda: who.catalogue.revoke_token(str(token_id)))
    return RedirectResponse("/my/tokens", status_code=303)


__all__ = ["MAX_TOKEN_DAYS", "router"]
