"""Account and rights commands: ``hcdc user / group / programme / delegate / release / review /
workspace / audit``.

They run on the data centre found from ``--root``, ``$HCDC_ROOT`` or the current directory, as
the local operator (an admin: whoever can open the catalogue has every right over it); the
commands that a PI would do (``delegate``, ``release``) take ``--as USER`` to act as that
account, with its rights checked by :mod:`hcdc.archive.access`. Every change is one
transaction together with its audit-log entry. ``--json`` prints JSON for scripts.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.common import (
    JSON_OPTION,
    ROOT_OPTION,
    fail,
    parse_object_id,
    print_mapping,
    viewing,
)
from hcdc.cli.output import console, emit_json, print_table

if TYPE_CHECKING:
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

AS_OPTION = typer.Option(
    None, "--as", help="Act as this account (its rights are checked); default: the local operator (admin)."
)


@contextmanager
def _facade(root: Path | None, as_user: str | None = None) -> Iterator[ProcessingCatalogue]:
    """The catalogue facade as the ``--as`` account (default: the local operator) sees it; its
    writes decide rights in access.py; refusals, bad values and hidden objects are one-line
    errors."""
    from hcdc.archive.accounts import AccountError

    with viewing(root, as_user, (AccountError,)) as (_, view):
        yield view


def _date(text: str | None, option: str) -> dt.datetime | None:
    """``YYYY-MM-DD`` or an ISO 8601 date-time (UTC) -> naive UTC datetime."""
    if text is None:
        return None
    from hcdc.archive.access import utc_naive

    try:
        return utc_naive(dt.datetime.fromisoformat(text))
    except ValueError:
        fail(f"{option} must be a date YYYY-MM-DD or an ISO date-time, got {text!r}")
        raise AssertionError("unreachable") from None


def _read_password_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("--password-stdin: no password on standard input")
    return password


def _done(json_output: bool, payload: dict[str, Any], message: str) -> None:
    if json_output:
        emit_json(payload)
    else:
        console.print(message, highlight=False)


# -- user ---------------------------------------------------------------------------------
user_app = typer.Typer(help="User accounts, passwords, API tokens, quotas.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="Account name (letters, digits, . _ @ -)."),
    role: str = typer.Option("user", "--role", help="admin, operator, user or public."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    full_name: str | None = typer.Option(None, "--full-name", help="The person's name."),
    email: str | None = typer.Option(None, "--email", help="Contact address."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Create an account and its private workspace (no password: token login only)."""
    password = _read_password_stdin() if password_stdin else None
    with _facade(root) as view:
        user_id = view.admin().add_user(name, role=role, password=password, full_name=full_name, email=email)
    _done(json_output, {"id": user_id, "name": name, "role": role}, f"[green]user {name}[/] ({role}) created")


@user_app.command("list")
def user_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """List accounts with their roles, groups and programmes."""
    with _facade(root) as view:
        rows = view.admin().users()
    if json_output:
        emit_json(rows)
        return
    for row in rows:
        for key in ("groups", "pi_of", "coi_of"):
            row[key] = ", ".join(row[key])
    print_table(
        f"Users ({len(rows)})",
        ["name", "role", "active", "password", "tokens", "groups", "pi_of", "coi_of", "last_login_at"],
        rows,
    )


@user_app.command("passwd")
def user_passwd(
    name: str = typer.Argument(..., help="Account name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Set an account's password (prompted twice unless --password-stdin)."""
    if password_stdin:
        password = _read_password_stdin()
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with _facade(root) as view:
        view.admin().set_password(name, password)
    console.print(f"password of {name} set", highlight=False)


@user_app.command("role")
def user_role(
    name: str = typer.Argument(..., help="Account name."),
    role: str = typer.Argument(..., help="admin, operator, user or public."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Change an account's role."""
    with _facade(root) as view:
        view.admin().change_user(name, role=role)
    console.print(f"{name} is now {role}", highlight=False)


@user_app.command("disable")
def user_disable(name: str = typer.Argument(...), root: Path | None = ROOT_OPTION) -> None:
    """Disable an account: no login, no token, public data only."""
    with _facade(root) as view:
        view.admin().change_user(name, active=False)
    console.print(f"{name} disabled", highlight=False)


@user_app.command("enable")
def user_enable(name: str = typer.Argument(...), root: Path | None = ROOT_OPTION) -> None:
    """Re-enable a disabled account."""
    with _facade(root) as view:
        view.admin().change_user(name, active=True)
    console.print(f"{name} enabled", highlight=False)


@user_app.command("token")
def user_token(
    name: str = typer.Argument(..., help="Account the token authenticates as."),
    label: str | None = typer.Option(None, "--label", help="What the token is for (e.g. laptop)."),
    days: int | None = typer.Option(
        None, "--days", min=1, help="Lifetime in days (default: access_token_days)."
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Make a personal API token; its secret is printed once, only its hash is kept."""
    with _facade(root) as view:
        token = view.admin().create_token(name, label=label, days=days)
    if json_output:
        emit_json(
            {"id": token.id, "prefix": token.prefix, "token": token.secret, "expires_at": token.expires_at}
        )
        return
    print(token.secret)
    console.print(
        f"[dim]token {token.prefix} for {name}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC; "
        "store it now, it cannot be shown again[/]",
        highlight=False,
    )


@user_app.command("tokens")
def user_tokens(
    name: str | None = typer.Argument(None, help="Only this account's tokens."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List API tokens (prefix, state, expiry; never the secrets)."""
    with _facade(root) as view:
        rows = view.admin().tokens(name)
    if json_output:
        emit_json(rows)
    else:
        print_table(
            f"API tokens ({len(rows)})",
            ["id", "user", "prefix", "name", "state", "expires_at", "last_used_at"],
            rows,
        )


@user_app.command("revoke-token")
def user_revoke_token(
    token: str = typer.Argument(..., help="Token id, prefix (see 'hcdc user tokens') or the secret."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Revoke an API token (it stops working at once)."""
    with _facade(root, as_user) as view:
        token_id = view.revoke_token(token)
    console.print(f"token {token_id} revoked", highlight=False)


@user_app.command("quota")
def user_quota(
    name: str = typer.Argument(..., help="Account name."),
    max_jobs: int = typer.Option(..., "--max-jobs", min=0, help="Concurrent queued+running jobs."),
    access_from: str | None = typer.Option(None, "--from", help="Window start (YYYY-MM-DD, UTC)."),
    access_until: str | None = typer.Option(None, "--until", help="Window end (YYYY-MM-DD, UTC)."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Set an external user's processing quota (concurrent jobs and access window)."""
    start, end = _date(access_from, "--from"), _date(access_until, "--until")
    with _facade(root) as view:
        view.admin().set_quota(name, max_jobs, start, end)
    console.print(
        f"quota of {name}: {max_jobs} job(s), window {start or '-'} .. {end or '-'}", highlight=False
    )


@user_app.command("can-see")
def user_can_see(
    name: str = typer.Argument(..., help="Account name, or 'anonymous'."),
    object_id: str = typer.Argument(..., metavar="ID", help="File (12, f12), dataset (d3) or product (p5)."),
    at: str | None = typer.Option(None, "--at", help="At this date (default: now), YYYY-MM-DD or ISO."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Explain whether an account may see an object, and by which rule (docs/access.md)."""
    from hcdc.archive.access import RULES_VERSION

    when = _date(at, "--at")
    with _facade(root) as view:
        admin = view.admin()
        user = admin.account(name)
        kind, number = parse_object_id(object_id)
        decision = admin.explain(user, (kind, number), when)
    payload = {
        "user": name,
        "object": f"{kind}:{number}",
        "allowed": decision.allowed,
        "rule": decision.rule,
        "reason": decision.reason,
        "rules_version": RULES_VERSION,
    }
    if json_output:
        emit_json(payload)
        return
    verdict = "[green]yes[/]" if decision.allowed else "[red]no[/]"
    console.print(
        f"{name} may see {kind} {number}: {verdict} ({decision.rule}: {decision.reason})", highlight=False
    )


# -- group --------------------------------------------------------------------------------
group_app = typer.Typer(help="Survey teams (groups) and their members.", no_args_is_help=True)


@group_app.command("add")
def group_add(
    name: str = typer.Argument(..., help="Group name."),
    description: str | None = typer.Option(None, "--description", help="What the survey is."),
    members: list[str] = typer.Option([], "--member", help="Initial member (repeatable)."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Create a survey group."""
    with _facade(root) as view:
        view.admin().add_group(name, description, members)
    console.print(f"group {name} created", highlight=False)


@group_app.command("members")
def group_members_command(
    name: str = typer.Argument(..., help="Group name."),
    add: list[str] = typer.Option([], "--add", help="Add this user (repeatable)."),
    remove: list[str] = typer.Option([], "--remove", help="Remove this user (repeatable)."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show a group's members; --add / --remove change them."""
    with _facade(root) as view:
        admin = view.admin()
        members = admin.set_group_members(name, add, remove) if add or remove else admin.group_members(name)
    _done(json_output, {"group": name, "members": members}, f"{name}: {', '.join(members) or '(no members)'}")


@group_app.command("list")
def group_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """List groups with members and programmes."""
    with _facade(root) as view:
        rows = view.admin().groups()
    if json_output:
        emit_json(rows)
        return
    for row in rows:
        row["members"], row["programmes"] = ", ".join(row["members"]), ", ".join(row["programmes"])
    print_table(f"Groups ({len(rows)})", ["name", "description", "members", "programmes"], rows)


# -- programme ----------------------------------------------------------------------------
programme_app = typer.Typer(help="Observing programmes: PI, co-Is, proprietary period.", no_args_is_help=True)


def _programme_spec(prog_id, pi, cois, period_months, title, group):  # noqa: ANN001, ANN202
    from hcdc.archive.accounts import ProgrammeSpec

    return ProgrammeSpec(
        prog_id, pi=pi, cois=tuple(cois), period_months=period_months, title=title, group=group
    )


PI_HELP = "The PI's account."
COI_OPTION = typer.Option([], "--coi", help="A co-I's account (repeatable).")
PERIOD_OPTION = typer.Option(
    None, "--period-months", min=0, help="Proprietary period in months (default 12)."
)
TITLE_OPTION = typer.Option(None, "--title", help="Programme title.")
GROUP_OPTION = typer.Option(None, "--group", help="Survey group whose data this is.")


@programme_app.command("add")
def programme_add(
    prog_id: str = typer.Argument(..., help="ESO programme id, e.g. 0104.C-0007 (a run letter is dropped)."),
    pi: str = typer.Option(..., "--pi", help=PI_HELP),
    coi: list[str] = COI_OPTION,
    period_months: int | None = PERIOD_OPTION,
    title: str | None = TITLE_OPTION,
    group: str | None = GROUP_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Register a programme (its files' prog_id, with any run letter, map to it)."""
    from hcdc.archive.accounts import normalize_prog_id

    with _facade(root) as view:
        view.admin().save_programme(_programme_spec(prog_id, pi, coi, period_months, title, group))
    key = normalize_prog_id(prog_id)
    _done(json_output, {"prog_id": key, "pi": pi, "cois": coi}, f"programme {key} registered (PI {pi})")


@programme_app.command("set")
def programme_set(
    prog_id: str = typer.Argument(..., help="Programme id."),
    pi: str = typer.Option(..., "--pi", help=PI_HELP),
    coi: list[str] = COI_OPTION,
    period_months: int | None = PERIOD_OPTION,
    title: str | None = TITLE_OPTION,
    group: str | None = GROUP_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Change a programme (PI, co-Is replaced as a whole, period, group)."""
    with _facade(root) as view:
        spec = _programme_spec(prog_id, pi, coi, period_months, title, group)
        view.admin().save_programme(spec, replace=True)
    console.print(f"programme {prog_id} updated", highlight=False)


@programme_app.command("import")
def programme_import(
    csv_file: Path = typer.Argument(
        ..., metavar="CSV", help="Columns prog_id,pi[,cois,period_months,title,group]."
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Create or update programmes from a CSV file (all or nothing; co-Is separated by ';')."""
    from hcdc.archive.accounts import read_programme_csv

    with _facade(root) as view:
        admin = view.admin()
        done = admin.import_programmes(read_programme_csv(csv_file), str(csv_file))
    _done(json_output, {"programmes": done}, f"{len(done)} programme(s) imported from {csv_file}")


@programme_app.command("list")
def programme_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """List programmes with PI, co-Is, period and survey group."""
    with _facade(root) as view:
        rows = view.admin().programmes()
    if json_output:
        emit_json(rows)
        return
    for row in rows:
        row["cois"] = ", ".join(row["cois"])
    print_table(
        f"Programmes ({len(rows)})", ["prog_id", "pi", "cois", "period_months", "group", "title"], rows
    )


# -- delegate -----------------------------------------------------------------------------
delegate_app = typer.Typer(
    help="Delegations: a PI grants a user a programme or a dataset.", no_args_is_help=True
)


@delegate_app.command("grant")
def delegate_grant(
    user: str = typer.Argument(..., help="Account receiving access."),
    programme: str | None = typer.Option(None, "--programme", help="Programme id."),
    dataset: int | None = typer.Option(None, "--dataset", help="Dataset id."),
    expires: str | None = typer.Option(None, "--expires", help="End of the grant (YYYY-MM-DD, UTC)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Grant USER a programme (--programme) or one dataset (--dataset)."""
    until = _date(expires, "--expires")
    with _facade(root, as_user) as view:
        delegation_id = view.delegate(
            user, prog_id=programme, dataset_id=dataset, expires_at=until, reason=reason
        )
    what = f"programme {programme}" if programme else f"dataset {dataset}"
    _done(
        json_output,
        {"id": delegation_id, "to": user, "what": what},
        f"delegation {delegation_id}: {user} <- {what}",
    )


@delegate_app.command("revoke")
def delegate_revoke(
    delegation_id: int = typer.Argument(..., metavar="ID", help="Delegation id (see 'hcdc delegate list')."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Revoke a delegation."""
    with _facade(root, as_user) as view:
        view.revoke_delegation(delegation_id)
    console.print(f"delegation {delegation_id} revoked", highlight=False)


@delegate_app.command("list")
def delegate_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """List delegations (active, expired, revoked)."""
    with _facade(root) as view:
        rows = view.admin().delegations()
    if json_output:
        emit_json(rows)
    else:
        cols = ["id", "to", "programme", "dataset_id", "state", "granted_by", "expires_at", "reason"]
        print_table(f"Delegations ({len(rows)})", cols, rows)


# -- release ------------------------------------------------------------------------------
release_app = typer.Typer(help="Products' public release dates and PI delays.", no_args_is_help=True)


def _product_id(text: str) -> int:
    from hcdc.archive.queries import QueryError

    try:
        kind, number = parse_object_id(text if not text.isdigit() else f"p{text}")
    except QueryError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None
    if kind != "product":
        fail(f"{text!r} is a {kind}, not a product")
    return number


PRODUCT_ARG = typer.Argument(..., metavar="PRODUCT", help="Product id (5 or p5).")


@release_app.command("delay")
def release_delay(
    product: str = PRODUCT_ARG,
    until: str = typer.Option(..., "--until", help="New public date (YYYY-MM-DD, UTC)."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded)."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Delay a product's public release (the PI, up to access_max_delay_months)."""
    product_id, when = _product_id(product), _date(until, "--until")
    with _facade(root, as_user) as view:
        window = view.delay_release(product_id, when, reason)
    _done(
        json_output,
        window,
        f"product {product_id}: public on {when:%Y-%m-%d} instead of {window['scheduled']:%Y-%m-%d} "
        f"(at most {window['latest_allowed']:%Y-%m-%d})",
    )


@release_app.command("cancel")
def release_cancel(
    product: str = PRODUCT_ARG, as_user: str | None = AS_OPTION, root: Path | None = ROOT_OPTION
) -> None:
    """Remove a product's release delay."""
    product_id = _product_id(product)
    with _facade(root, as_user) as view:
        view.cancel_delay(product_id)
    console.print(f"product {product_id}: release delay removed", highlight=False)


@release_app.command("show")
def release_show(
    product: str = PRODUCT_ARG, json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION
) -> None:
    """A product's public date (delay included) and review state."""
    product_id = _product_id(product)
    with _facade(root) as view:
        info = view.release_status(product_id)
    if json_output:
        emit_json(info)
    else:
        print_mapping(f"Product {product_id}", info)


# -- review -------------------------------------------------------------------------------
review_app = typer.Typer(
    help="Product validation: validated products go on to Level 3.", no_args_is_help=True
)


@review_app.command("validate")
def review_validate(
    product: str = PRODUCT_ARG, as_user: str | None = AS_OPTION, root: Path | None = ROOT_OPTION
) -> None:
    """Mark a product validated."""
    product_id = _product_id(product)
    with _facade(root, as_user) as view:
        view.review_product(product_id, "validated", None)
    console.print(f"product {product_id} validated", highlight=False)


@review_app.command("flag")
def review_flag(
    product: str = PRODUCT_ARG,
    reason: str = typer.Option(..., "--reason", help="What is wrong (shown with the product)."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Flag a product bad (it stays visible, marked, and does not go on to Level 3)."""
    product_id = _product_id(product)
    with _facade(root, as_user) as view:
        view.review_product(product_id, "flagged", reason)
    console.print(f"product {product_id} flagged: {reason}", highlight=False)


# -- workspace ----------------------------------------------------------------------------
workspace_app = typer.Typer(
    help="Workspaces: each user's private area and the public one.", no_args_is_help=True
)


@workspace_app.command("list")
def workspace_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """List workspaces with their owner and number of products."""
    with _facade(root) as view:
        rows = view.admin().workspaces()
    if json_output:
        emit_json(rows)
    else:
        print_table(f"Workspaces ({len(rows)})", ["name", "owner", "is_public", "products", "path"], rows)


@workspace_app.command("place")
def workspace_place(
    workspace: str = typer.Argument(..., help="Workspace name ('public' publishes the product)."),
    product: str = PRODUCT_ARG,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Put a product in a workspace."""
    product_id = _product_id(product)
    with _facade(root, as_user) as view:
        view.place_in_workspace(workspace, product_id)
    console.print(f"product {product_id} placed in workspace {workspace}", highlight=False)


# -- audit --------------------------------------------------------------------------------
def audit_command(
    action: str | None = typer.Option(None, "--action", help="Only actions starting with this (e.g. user.)."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many entries."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show the audit log of administrative actions, newest first."""
    with _facade(root) as view:
        rows = view.admin().audit_log(limit, action)
    if json_output:
        emit_json(rows)
    else:
        print_table(f"Audit log ({len(rows)})", ["id", "at", "actor", "action", "object", "details"], rows)


def register(app: typer.Typer) -> None:
    """Add the account and rights commands to the ``hcdc`` application."""
    app.add_typer(user_app, name="user")
    app.add_typer(group_app, name="group")
    app.add_typer(programme_app, name="programme")
    app.add_typer(delegate_app, name="delegate")
    app.add_typer(release_app, name="release")
    app.add_typer(review_app, name="review")
    app.add_typer(workspace_app, name="workspace")
    app.command("audit")(audit_command)


__all__ = ["register"]
