"""Interferometry commands: ``hcdc granules`` (OiDB granules of the catalogued OIFITS files)
and ``hcdc oi ...`` (collections, delegations, validation by a person, Level 3 publication,
validation reports).

Thin: every command goes through the catalogue facade's interferometry part
(``view.granules``, :mod:`hcdc.archive.catalogue_granules`; the fit jobs through the pipeline's
``ProcessingCatalogue``); every listing is filtered and every change checked by
``archive.access``. Commands a data PI
would do take ``--as USER`` (default: the local operator, an admin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.common import (
    JSON_OPTION,
    LIMIT_OPTION,
    ROOT_OPTION,
    TARGET_OPTION,
    fail,
    print_mapping,
    viewing,
)
from hcdc.cli.output import emit_json, print_table

if TYPE_CHECKING:
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue

AS_OPTION = typer.Option(
    None, "--as", help="Act as (or, for listings, see as) this account; default: the local operator (admin)."
)
oi_app = typer.Typer(help="OIFITS: collections, delegations, validation, publication.", no_args_is_help=True)
collection_app = typer.Typer(help="OiDB collections (embargo, data rights, data PI).", no_args_is_help=True)
delegate_app = typer.Typer(
    help="Delegations of a collection / programme / sub-programme.", no_args_is_help=True
)
calibrators_app = typer.Typer(
    help="Calibrator catalogue (JSDC v2 columns) and bad-calibrator list.", no_args_is_help=True
)
oi_app.add_typer(collection_app, name="collection")
oi_app.add_typer(calibrators_app, name="calibrators")
oi_app.add_typer(delegate_app, name="delegate")


@contextmanager
def _viewing(root: Path | None, as_user: str | None) -> Iterator[ProcessingCatalogue]:
    """The catalogue facade as the account ``--as`` names (else the shell's operator);
    refusals and bad input become one-line errors."""
    from hcdc.archive.accounts import AccountError
    from hcdc.archive.interferometry import InterferometryError

    with viewing(root, as_user, (AccountError, InterferometryError)) as (_, view):
        yield view


def _when(text: str | None, option: str) -> dt.datetime | None:
    """``YYYY-MM-DD`` or an ISO 8601 date-time (UTC) -> naive UTC datetime."""
    if text is None:
        return None
    from hcdc.archive.access import utc_naive

    try:
        return utc_naive(dt.datetime.fromisoformat(text))
    except ValueError:
        fail(f"{option} must be a date YYYY-MM-DD or an ISO date-time, got {text!r}")
        raise AssertionError("unreachable") from None


#: Columns of the table view (``--json`` prints every field, the validation counts included).
TABLE_COLUMNS = (
    "id",
    "file",
    "target_name",
    "instrument_name",
    "facility_name",
    "t_min",
    "t_max",
    "t_exptime",
    "nb_vis",
    "nb_vis2",
    "nb_t3",
    "nb_channels",
    "quality_level",
    "severe",
)


def granules_command(
    target: str | None = TARGET_OPTION,
    instrument: str | None = typer.Option(
        None, "--instrument", help="INSNAME prefix, case-insensitive (OiDB's LIKE 'PIONIER%')."
    ),
    file_id: int | None = typer.Option(None, "--file", help="Only the granules of this file id."),
    collection: str | None = typer.Option(None, "--collection", help="Only this collection's granules."),
    level: int | None = typer.Option(None, "--level", min=0, max=3, help="Only this calib_level (0-3)."),
    all_versions: bool = typer.Option(
        False, "--all-versions", help="Include superseded versions (old file versions, earlier reductions)."
    ),
    limit: int = LIMIT_OPTION,
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List OiDB granules (one target x INSNAME x night x OIFITS file).

    Fields and units as in OiDB: s_ra/s_dec deg, t_min/t_max MJD, t_exptime s (minimum
    INT_TIME), em_min/em_max m, nb_* table rows. data_rights and obs_release_date are the
    effective ones (collection embargo from t_max, computed now); --as USER lists what that
    account may see today.
    """
    with _viewing(root, as_user) as view:
        rows = view.granules.search(
            target=target,
            instrument=instrument,
            file_id=file_id,
            collection=collection,
            level=level,
            all_versions=all_versions,
            limit=limit,
        )
    if json_output:
        emit_json(rows)
        return
    for row in rows:
        row["file"] = Path(row["file"]).name if row["file"] else row["obs_id"]  # L0 from ObsPortal
        row["severe"] = (row["validation"] or {}).get("SEVERE")
    print_table(f"Granules ({len(rows)})", TABLE_COLUMNS, rows)


@collection_app.command("add")
def collection_add(
    name: str = typer.Argument(..., help="Collection name, e.g. spica-issp."),
    coltype: str = typer.Option(
        ..., "--coltype", help="OiDB type: chara (18 months), eso, pionier (12), suv (24), ..."
    ),
    owner: str | None = typer.Option(None, "--owner", help="The data PI (an account)."),
    embargo_months: int | None = typer.Option(
        None, "--embargo-months", min=0, help="Default: the coltype's."
    ),
    rights: str | None = typer.Option(
        None, "--rights", help="public | secure | proprietary (default: secure with an embargo)."
    ),
    release_date: str | None = typer.Option(None, "--release-date", help="Nothing public before this date."),
    level: int | None = typer.Option(
        None, "--level", min=0, max=3, help="Default calib_level of its granules."
    ),
    facility: str | None = typer.Option(None, "--facility", help="Take files of this ARRNAME (e.g. CHARA)."),
    instrument: str | None = typer.Option(None, "--instrument", help="Take files with this INSNAME prefix."),
    progid: str | None = typer.Option(None, "--progid", help="Take files of this programme."),
    title: str | None = typer.Option(None, "--title"),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Register a collection (admins); granules already catalogued that match join it."""
    from hcdc.archive.interferometry import CollectionSpec

    spec = CollectionSpec(
        name,
        coltype,
        owner,
        embargo_months,
        rights,
        _when(release_date, "--release-date"),
        level,
        facility,
        instrument,
        progid.split("(", 1)[0] if progid else None,
        title,
    )
    with _viewing(root, None) as view:
        row = view.granules.add_collection(spec)
    if json_output:
        emit_json(row)
    else:
        print_mapping(f"Collection {name}", row)


@collection_app.command("list")
def collection_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """Collections with their embargo, data rights, data PI, rules and granule counts."""
    with _viewing(root, None) as view:
        rows = view.granules.collections()
    if json_output:
        emit_json(rows)
    else:
        columns = (
            "name",
            "coltype",
            "embargo_months",
            "data_rights",
            "data_pi",
            "facility",
            "instrument",
            "granules",
        )
        print_table(f"Collections ({len(rows)})", columns, rows)


@collection_app.command("assign")
def collection_assign(
    name: str = typer.Argument(..., help="Collection name."),
    file: str = typer.Argument(..., help="File id or ingested path."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Put one OIFITS file's granules into a collection, whatever its rules (admins)."""
    with _viewing(root, None) as view:
        moved = view.granules.assign_file(file, name)
    typer.echo(f"{moved} granule(s) now in {name}")


@delegate_app.command("grant")
def delegate_grant(
    user: str = typer.Argument(..., help="The delegate (an account)."),
    collection: str = typer.Option(..., "--collection", help="The collection delegated (or narrowed below)."),
    progid: str | None = typer.Option(None, "--progid", help="Only this programme of the collection."),
    subid: str | None = typer.Option(None, "--subid", help="Only this sub-programme (HIERARCH SPICADB-ID)."),
    expires: str | None = typer.Option(None, "--expires", help="Date the delegation ends."),
    reason: str | None = typer.Option(None, "--reason"),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Let a delegate see a collection's embargoed granules (the data PI or an admin, A9)."""
    with _viewing(root, as_user) as view:
        number = view.granules.delegate(user, collection, progid, subid, _when(expires, "--expires"), reason)
    if json_output:
        emit_json({"id": number})
    else:
        typer.echo(f"delegation {number}: {user} sees {collection} {progid or ''} {subid or ''}".rstrip())


@delegate_app.command("revoke")
def delegate_revoke(
    delegation_id: int = typer.Argument(...),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Revoke a granule delegation (the data PI or an admin, A9)."""
    with _viewing(root, as_user) as view:
        view.granules.revoke_delegation(delegation_id)
    typer.echo(f"delegation {delegation_id} revoked")


@delegate_app.command("list")
def delegate_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """Every granule delegation, newest first."""
    with _viewing(root, None) as view:
        rows = view.granules.delegations()
    if json_output:
        emit_json(rows)
    else:
        columns = (
            "id",
            "grantee",
            "collection",
            "progid",
            "proposal_subid",
            "granted_by",
            "expires_at",
            "revoked_at",
        )
        print_table(f"Granule delegations ({len(rows)})", columns, rows)


@oi_app.command("validate")
def validate_command(
    file: str = typer.Argument(..., help="File id or ingested path of an OIFITS file."),
    quality: int = typer.Option(
        ..., "--quality", min=1, max=4, help="SPICA-DB: 1 trash, 2 poor, 3 medium, 4 science ready."
    ),
    comment: str = typer.Option(..., "--comment", help="Why (kept with the validation)."),
    calibrator: bool | None = typer.Option(
        None, "--calibrator/--science", help="Category written (HIERARCH PRO SCIENCE); default: the file's."
    ),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Validate an OIFITS file: record who, when, the flag and the comment, and archive a new
    version whose header carries HIERARCH QUALITY LEVEL and HIERARCH PRO SCIENCE."""
    with _viewing(root, as_user) as view:
        granules = view.granules
        record = granules.validate(granules.resolve_file(file), quality, comment, calibrator)
    if json_output:
        emit_json(record)
    else:
        print_mapping(f"Validation {record['validation']}", record)


@oi_app.command("fit")
def fit_command(
    collection: str = typer.Option(..., "--collection", help="Fit every current file of this collection."),
    model: str = typer.Option("ud", "--model", help="ud (uniform disk), ld (limb-darkened disk) or binary."),
    ld_coefficient: float | None = typer.Option(None, "--ld-coefficient", help="ld: linear coefficient."),
    theta0_mas: float | None = typer.Option(
        None, "--theta0-mas", help="Starting diameter, mas (searched in [θ0/2, 2θ0]); default: a global grid."
    ),
    from_catalogue: bool = typer.Option(
        False,
        "--from-catalogue",
        help="Start each single-target file from the imported JSDC diameter of its target "
        "(band nearest its wavelengths); a global grid for the others.",
    ),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Queue homogeneous model fits of a collection: one job per current OIFITS file the caller
    may see (workflow oifits-fit); 'hcdc worker' runs them, each fit a Level 3 product with
    provenance (χ², χ²_r, errors per target in fits.json)."""
    if from_catalogue and (theta0_mas is not None or model == "binary"):
        fail("--from-catalogue starts a disk fit from the catalogue: not with --theta0-mas or --model binary")
    if model not in ("ud", "ld", "binary"):
        fail(f"--model must be ud, ld or binary, not {model!r}")
    parameters = [f"fit.model={model}"]
    if ld_coefficient is not None:
        parameters.append(f"fit.ld_coefficient={ld_coefficient}")
    if theta0_mas is not None:
        parameters.append(f"fit.theta0_mas={theta0_mas}")
    queued = []
    with _viewing(root, as_user) as view:
        files = view.granules.fit_inputs(collection, from_catalogue=from_catalogue)
        if not files:
            fail(f"collection {collection!r}: no current file you may see")
        for item in files:
            start = item["start"]
            job_id = view.queue_oifits_fit(
                item["file_id"],
                parameters + ([] if start is None else [f"fit.theta0_mas={start['theta_mas']}"]),
            )
            how = (
                "grid"
                if start is None
                else f"{start['theta_mas']:.4g} mas ({start['column']} of {start['name']})"
            )
            queued.append(
                {
                    "job": job_id,
                    "file_id": item["file_id"],
                    "file": item["path"],
                    "targets": item["targets"],
                    "start": how,
                }
            )
    if json_output:
        emit_json({"collection": collection, "model": model, "jobs": queued})
    else:
        print_table(
            f"{len(queued)} fit job(s) queued", ["job", "file_id", "file", "targets", "start"], queued
        )


@oi_app.command("publish")
def publish_command(
    file: str = typer.Argument(..., help="File id or ingested path of an OIFITS file."),
    bibcode: str = typer.Option(..., "--bibcode", help="ADS bibcode of the article (19 characters)."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Make a file's granules Level 3 (published), attached to an article's bibcode."""
    with _viewing(root, as_user) as view:
        file_id, count = view.granules.publish(file, bibcode)
    if json_output:
        emit_json({"file": file_id, "granules": count, "calib_level": 3, "bib_reference": bibcode})
    else:
        typer.echo(f"file {file_id}: {count} granule(s) now Level 3 ({bibcode})")


@oi_app.command("check")
def check_command(
    file: str = typer.Argument(..., help="File id or path (catalogued or not) of an OIFITS file."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """The oitools-rule validation report of an OIFITS file (JMMC profile) and, for a
    catalogued file, the validations by people."""
    report, validations = _report(file, root)
    if json_output:
        emit_json({**report, "validations": validations})
        return
    counts = report.get("counts", {})
    summary = ", ".join(f"{n} {severity}" for severity, n in counts.items())
    typer.echo(f"{report.get('file')}: {summary} ({report.get('profile')} profile)")
    print_table("Failures", ("severity", "rule", "table", "member", "message"), report.get("failures", []))
    if validations:
        print_table(
            "Validations", ("validated_at", "actor", "quality", "quality_level", "comment"), validations
        )


def _report(file: str, root: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(check report, validations) of a catalogued file (id or ingested path), else the
    report of the file on disk."""
    from hcdc.archive.interferometry import InterferometryError

    with _viewing(root, None) as view:
        try:
            file_id = view.granules.resolve_file(file)
        except InterferometryError as exc:
            if Path(file).is_file():
                return _check_on_disk(Path(file)), []
            fail(str(exc))
            raise AssertionError("unreachable") from None
        detail = view.file_detail(file_id)
        report = (detail.get("extra") or {}).get("oifits_check")
        if report is None:
            fail(f"{detail['path']} (file {file_id}): no OIFITS validation report (not an OIFITS file)")
        return {"file": detail["path"], "file_id": file_id, **report}, view.granules.validations(file_id)


def _check_on_disk(path: Path) -> dict[str, Any]:
    from hcdc.instruments.base import UnreadableFileError
    from hcdc.instruments.fits_file import open_whole
    from hcdc.instruments.oifits_check import check_oifits

    try:
        with open_whole(path) as hdul:
            return {"file": str(path), "file_id": None, **check_oifits(hdul)}
    except UnreadableFileError as exc:
        fail(f"{path}: {exc}")
        raise AssertionError("unreachable") from None


@oi_app.command("import-obsportal")
def import_obsportal_command(
    votable: Path = typer.Argument(..., help="An ObsPortal VOTable (obs.jmmc.fr/search.votable answer)."),
    collection: str = typer.Option(
        "issp_l0", "--collection", help="Registered collection that takes the granules (ISSP L0 feed)."
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Import ObsPortal exposures as Level 0 granules (OiDB's L0 for SPICA and others; admins).

    One granule per row, OiDB's mapping (docs/interferometry.md): obs_id = exp_id (a re-import
    updates, never duplicates), t_min/t_max MJD, t_exptime s, em_* m, data_rights secure, no
    file (access_url: the exposure's ObsPortal page). A bad row is reported (file, row, reason)
    and skipped; the others are imported. Exit 1 when some row was rejected, 2 when the
    file cannot be read or the collection is not registered.
    """
    from hcdc.archive.obsportal import ObsPortalError

    try:
        with _viewing(root, None) as view:
            report = view.granules.import_obsportal(votable, collection)
    except ObsPortalError as exc:
        fail(str(exc), 2)
        raise AssertionError("unreachable") from None
    if json_output:
        emit_json(report)
    else:
        typer.echo(
            f"{votable}: {report['rows']} row(s): {report['added']} added, {report['updated']} updated, "
            f"{report['unchanged']} unchanged, {len(report['errors'])} rejected (collection {collection})"
        )
        for line in report["warnings"]:
            typer.echo(f"warning: {line}", err=True)
        for line in report["errors"]:
            typer.echo(f"error: {line}", err=True)
    if report["errors"]:
        raise typer.Exit(1)


@calibrators_app.command("import")
def calibrators_import(
    table: Path = typer.Argument(..., help="CSV or VOTable (.xml/.vot) file."),
    bad_list: bool = typer.Option(
        False, "--bad-list", help="TABLE is a bad-calibrator list (columns name[, ra, dec, reason])."
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Import a calibrator catalogue in JSDC v2 columns (Name, RAJ2000, DEJ2000, LDD, e_LDD,
    UDDB..UDDN, ObjTypes_SIMBAD, CalFlag, ...) or, with --bad-list, a bad-calibrator list.
    A star already imported (same normalised name) is replaced."""
    from hcdc.archive.interferometry_calibrators import CalibratorError

    try:
        with _viewing(root, None) as view:
            count = view.granules.import_calibrators(table, bad_list=bad_list)
    except CalibratorError as exc:
        fail(str(exc))
    kind = "bad-calibrator list" if bad_list else "calibrator catalogue"
    if json_output:
        emit_json({"file": str(table), "kind": kind, "rows": count})
    else:
        typer.echo(f"{table}: {count} row(s) imported into the {kind}")


@calibrators_app.command("list")
def calibrators_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """The imported calibrators (diameters in mas)."""
    with _viewing(root, None) as view:
        rows = view.granules.calibrators()
    if json_output:
        emit_json(rows)
        return
    print_table(
        "Calibrators", ("name", "ra", "dec", "ldd", "e_ldd", "calflag", "objtypes_simbad", "source"), rows
    )


@oi_app.command("vet")
def vet_command(
    file: str = typer.Argument(..., help="OIFITS file: a path on disk, or a catalogued file's id or path."),
    as_calibrator: bool = typer.Option(
        False, "--as-calibrator", help="Vet the file's own targets as calibrators whatever its header says."
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Vet the calibrators an OIFITS file uses (ESO PRO JSDC CALn keywords; the file's own
    targets when it is a calibrator file): Be / emission-line stars, bad-list members,
    binarity (JSDC CalFlag bit 2, own closure phases against centro-symmetry), diameter
    against a uniform disk of the JSDC diameter."""
    from hcdc.archive.interferometry_calibrators import CalibratorError

    try:
        with _viewing(root, None) as view:
            report = view.granules.vet(_vetted_path(view, file), as_calibrator=as_calibrator)
    except CalibratorError as exc:
        fail(str(exc))
        raise AssertionError("unreachable") from None
    if json_output:
        emit_json(report)
        return
    typer.echo(f"{report['file']}: {report['verdict']}")
    rows = [
        {
            "calibrator": c["name"],
            "origin": c["origin"],
            "verdict": c["verdict"],
            "flags": ", ".join(c["flags"]) or "-",
            "cp_chi2_r": (c.get("residuals") or {}).get("cp_chi2_r"),
            "fitted_ud_mas": (c.get("residuals") or {}).get("fitted_ud_mas"),
        }
        for c in report["calibrators"]
    ]
    print_table(
        "Calibrators", ("calibrator", "origin", "verdict", "flags", "cp_chi2_r", "fitted_ud_mas"), rows
    )


def _vetted_path(view: ProcessingCatalogue, ref: str) -> Path:
    """The stored bytes of the catalogued file ``ref`` (id, or ingested path: its current
    version, e.g. the copy written by a validation), else the file on disk as given."""
    from hcdc.archive.interferometry import InterferometryError

    try:
        file_id = view.granules.resolve_file(ref)
    except InterferometryError as exc:
        if Path(ref).is_file():
            return Path(ref)
        fail(str(exc))
        raise AssertionError("unreachable") from None
    return view.file_location(file_id)[0]


def register(app: typer.Typer) -> None:
    """Add the interferometry commands to the ``hcdc`` application."""
    app.command("granules")(granules_command)
    app.add_typer(oi_app, name="oi")
