"""``hcdc target ...``, ``hcdc tdb ...`` and ``hcdc hcifits ...``: the Target Data Base.

* ``hcdc target resolve NAME`` (SIMBAD / dictionary / cache; ``--offline``), ``add``, ``alias``,
  ``set``, ``list``, ``show``, ``dictionary add|list`` (admins: names SIMBAD does not know);
* ``hcdc tdb detections`` (filters), ``receive`` (catch up validated products), ``export``,
  ``import``, ``json-schema``;
* ``hcdc hcifits import FILE``, ``export REDUCTION_ID OUT``, ``check FILE``.

Commands act as the local operator (admin) unless ``--as USER``: then listings and exports show
what that account may see (rule R15) and admin-only commands are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, fail, print_mapping, viewing
from hcdc.cli.output import console, emit_json, print_table

if TYPE_CHECKING:
    from hcdc.archive.catalogue_tdb import TargetCatalogue

AS_OPTION = typer.Option(
    None, "--as", help="Act as this account (its rights are checked); default: the local operator (admin)."
)
SIMBAD_OPTION = typer.Option(
    None,
    "--simbad-url",
    envvar="HCDC_SIMBAD_TAP_URL",
    help="SIMBAD TAP endpoint (default: https://simbad.cds.unistra.fr/simbad/sim-tap).",
)
OFFLINE_OPTION = typer.Option(
    False, "--offline", help="Do not ask SIMBAD: catalogue, dictionary and cache only."
)

target_app = typer.Typer(
    help="Targets of the Target Data Base: names, SIMBAD, aliases.", no_args_is_help=True
)
dictionary_app = typer.Typer(
    help="The internal name dictionary (names SIMBAD does not know).", no_args_is_help=True
)
tdb_app = typer.Typer(
    help="Target Data Base: observations, reductions, detections; JSON exchange.", no_args_is_help=True
)
hcifits_app = typer.Typer(help="HCI-FITS (DIVA format) import, export and check.", no_args_is_help=True)
target_app.add_typer(dictionary_app, name="dictionary")


@contextmanager
def _viewing(root: Path | None, as_user: str | None = None) -> Iterator[TargetCatalogue]:
    """The Target Data Base through the catalogue facade, as the account ``--as`` names (else
    the shell's operator); TDB, SIMBAD and rights errors become one-line messages."""
    from hcdc.archive.exchange.hcifits import HciFitsError
    from hcdc.archive.exchange.tdb_json import ExchangeError
    from hcdc.archive.simbad import SimbadError
    from hcdc.archive.targets import TargetError
    from hcdc.archive.tdb import TdbError
    from hcdc.archive.tdb_views import TdbQueryError

    refusals = (TargetError, SimbadError, TdbError, TdbQueryError, ExchangeError, HciFitsError)
    with viewing(root, as_user, refusals) as (_, view):
        yield view.targets


def _show(json_output: bool, target: dict[str, Any]) -> None:
    if json_output:
        emit_json(target)
        return
    sources = target.get("sources", {})
    rows = {
        k: (f"{v}  [{sources[k]}]" if k in sources else v)
        for k, v in target.items()
        if k not in ("sources", "aliases", "links")
    }
    print_mapping(f"Target {target['id']}: {target['name']}", rows)
    console.print("aliases: " + ", ".join(target["aliases"]), highlight=False)
    console.print(
        "linked: " + (", ".join(f"{n} {k}(s)" for k, n in target["links"].items()) or "nothing"),
        highlight=False,
    )


# -- targets ------------------------------------------------------------------------------
@target_app.command("resolve")
def target_resolve(
    name: str = typer.Argument(..., help='Target name in any spelling ("51Eri", "HD 29391", "bet Pic").'),
    offline: bool = OFFLINE_OPTION,
    refresh: bool = typer.Option(False, "--refresh", help="Ask SIMBAD again, ignoring the cache."),
    simbad_url: str | None = SIMBAD_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Find or create the target called NAME, filling its values from SIMBAD (cached)."""
    with _viewing(root) as tdb:
        target_id = tdb.curate().resolve(name, endpoint=simbad_url, offline=offline, refresh=refresh)
        target = tdb.record(target_id)
    _show(json_output, target)


@target_app.command("add")
def target_add(
    name: str = typer.Argument(..., help="Display name of the new target."),
    ra: float | None = typer.Option(None, "--ra", help="ICRS right ascension [deg]."),
    dec: float | None = typer.Option(None, "--dec", help="ICRS declination [deg]."),
    source: str = typer.Option("manual", "--source", help="Where the values come from."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Add a target by hand (no SIMBAD), e.g. a companion host SIMBAD does not know (admins)."""
    values = {k: v for k, v in {"ra_deg": ra, "dec_deg": dec}.items() if v is not None}
    with _viewing(root, as_user) as tdb:
        target = tdb.record(tdb.curate().add(name, values, source))
    _show(json_output, target)


@target_app.command("alias")
def target_alias(
    target: str = typer.Argument(..., help="Target id or one of its names."),
    names: list[str] = typer.Argument(..., help="Names to add."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Give a target more names (admins)."""
    with _viewing(root, as_user) as tdb:
        curation = tdb.curate()
        added = curation.add_aliases(tdb.target_id(target), names)
    console.print(f"added: {', '.join(added) or 'nothing (names known already)'}", highlight=False)


@target_app.command("set")
def target_set(
    target: str = typer.Argument(..., help="Target id or one of its names."),
    values: list[str] = typer.Argument(..., help="FIELD=VALUE pairs, e.g. age_myr=20 spectral_type=F0IV."),
    source: str = typer.Option(..., "--source", help="Where the values come from (paper, catalogue)."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Set values of a target with their source (admins)."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep:
            fail(f"expected FIELD=VALUE, got {item!r}")
        try:
            parsed[key] = float(text)
        except ValueError:
            parsed[key] = text
    with _viewing(root, as_user) as tdb:
        curation = tdb.curate()
        curation.set_values(tdb.target_id(target), parsed, source)
    console.print(f"set {', '.join(parsed)} ({source})", highlight=False)


@target_app.command("list")
def target_list(
    name: str | None = typer.Option(None, "--name", help="Only targets one of whose names contains this."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List targets (targets are public: rule R15)."""
    with _viewing(root) as tdb:
        rows = tdb.listing(name)
    if json_output:
        emit_json(rows)
        return
    print_table(
        f"Targets ({len(rows)})",
        ["id", "name", "ra_deg", "dec_deg", "parallax_mas", "spectral_type", "age_myr", "resolved"],
        rows,
    )


@target_app.command("show")
def target_show(
    target: str = typer.Argument(..., help="Target id or one of its names."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """A target's values with their sources, its names and what is linked to it."""
    with _viewing(root) as tdb:
        target_row = tdb.record(tdb.target_id(target))
    _show(json_output, target_row)


@dictionary_app.command("add")
def dictionary_add(
    name: str = typer.Argument(..., help="The name SIMBAD does not know."),
    canonical: str | None = typer.Option(
        None, "--means", help="The target name it stands for (default: itself)."
    ),
    values: list[str] = typer.Option([], "--value", help="FIELD=VALUE for a new target (repeatable)."),
    note: str | None = typer.Option(None, "--note", help="Why the entry exists."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Add a name to the internal dictionary (admins)."""
    parsed = {}
    for item in values:
        key, _, text = item.partition("=")
        try:
            parsed[key] = float(text)
        except ValueError:
            parsed[key] = text
    with _viewing(root, as_user) as tdb:
        tdb.curate().add_dictionary_name(name, canonical, parsed, note)
    console.print(f"{name} -> {canonical or name}", highlight=False)


@dictionary_app.command("list")
def dictionary_list(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """The internal dictionary's names."""
    with _viewing(root) as tdb:
        rows = tdb.dictionary()
    if json_output:
        emit_json(rows)
        return
    print_table(f"Dictionary ({len(rows)})", ["name", "canonical", "values", "note", "added_by"], rows)


# -- tdb ----------------------------------------------------------------------------------
@tdb_app.command("detections")
def tdb_detections(
    target: str | None = typer.Option(None, "--target", help="Target id or name."),
    min_snr: float | None = typer.Option(None, "--min-snr", help="Only detections with S/N >= this."),
    min_sep: float | None = typer.Option(None, "--min-sep", help="Separation >= this [mas]."),
    max_sep: float | None = typer.Option(None, "--max-sep", help="Separation <= this [mas]."),
    status: str | None = typer.Option(
        None, "--status", help="Candidate status: bound, background, undetermined, ungrouped."
    ),
    survey: str | None = typer.Option(None, "--survey", help="Only this survey's observations."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List detections (with target, epoch, reduction), what the account may see."""
    with _viewing(root, as_user) as tdb:
        rows = tdb.detections(
            target_id=None if target is None else tdb.target_id(target),
            min_snr=min_snr,
            min_separation=min_sep,
            max_separation=max_sep,
            status=status,
            survey=survey,
            limit=None,
        )
    if json_output:
        emit_json(rows)
        return
    print_table(
        f"Detections ({len(rows)})",
        [
            "id",
            "target",
            "date_jd",
            "instrument",
            "filter",
            "separation_mas",
            "pa_deg",
            "snr",
            "magnitude",
            "candidate",
            "status",
        ],
        rows,
    )


@tdb_app.command("group")
def tdb_group(
    target: str = typer.Argument(..., help="Target id or name."),
    n_sigma: float = typer.Option(5.0, "--n-sigma", help="Match threshold (Mahalanobis distance)."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Group a target's detections into candidates and run the proper-motion test (admins)."""
    with _viewing(root, as_user) as tdb:
        curation = tdb.curate()
        counts = curation.group(tdb.target_id(target), n_sigma=n_sigma)
    rows = counts["candidate_list"]
    if json_output:
        emit_json(counts)
        return
    print_table(
        f"Candidates ({counts['grouped']} grouped, {counts['ungrouped']} ungrouped)",
        ["label", "status", "grouped_by", "reason"],
        rows,
    )
    if counts["missing_host_values"]:  # the test could not run: say so, not a bare "undetermined"
        console.print(
            f"warning: {counts['untested']} candidate(s) not tested: the host's "
            f"{', '.join(counts['missing_host_values'])} unknown "
            "('hcdc target set' or 'hcdc target resolve')",
            highlight=False,
            markup=False,
        )


@tdb_app.command("assign")
def tdb_assign(
    detection: int = typer.Argument(..., help="Detection id."),
    label: str = typer.Argument(..., help="Candidate label of its target ('-': none)."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Regroup by hand: put a detection into a candidate (admins; kept by later 'tdb group')."""
    with _viewing(root, as_user) as tdb:
        tdb.curate().assign(detection, None if label == "-" else label)
    console.print(f"detection {detection} -> {label}", highlight=False)


@tdb_app.command("receive")
def tdb_receive(json_output: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
    """Send every validated Level 2 product to the TDB (catch-up; validation does it by itself)."""
    with _viewing(root) as tdb:
        reductions = tdb.curate().receive_validated()
    if json_output:
        emit_json({"reductions": reductions})
        return
    console.print(f"{len(reductions)} reduction(s) received", highlight=False)


@tdb_app.command("export")
def tdb_export(
    out: Path = typer.Argument(..., help="JSON file to write."),
    target: list[str] = typer.Option([], "--target", help="Only these targets (repeatable)."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Export targets -> observations -> reductions -> detections as hierarchical JSON."""
    from hcdc.archive.exchange.tdb_json import write_export

    with _viewing(root, as_user) as tdb:
        data = tdb.export([tdb.target_id(t) for t in target] or None)
    write_export(data, out)
    console.print(f"{len(data['targets'])} target(s) written to {out}", highlight=False)


@tdb_app.command("import")
def tdb_import(
    path: Path = typer.Argument(..., help="Exchange JSON file (see 'hcdc tdb json-schema')."),
    survey: str | None = typer.Option(None, "--survey", help="Survey of observations that name none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace target values already known."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Import another survey's results (NACO, HST, Keck, ...) from hierarchical JSON (admins)."""
    from hcdc.archive.exchange.tdb_json import read_json

    with _viewing(root, as_user) as tdb:
        curation = tdb.curate()
        counts = curation.import_exchange(read_json(path), str(path), overwrite=overwrite, survey=survey)
    if json_output:
        emit_json(counts)
        return
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)


@tdb_app.command("json-schema")
def tdb_json_schema() -> None:
    """Print the JSON schema of the exchange file."""
    from hcdc.archive.exchange.tdb_json import schema

    print(json.dumps(schema(), indent=2))


# -- hcifits ------------------------------------------------------------------------------
@hcifits_app.command("import")
def hcifits_import(
    path: Path = typer.Argument(..., help="HCI-FITS file (spec or ALICE variant)."),
    survey: str | None = typer.Option(None, "--survey", help="Survey the observation belongs to."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Import an HCI-FITS file: target, observation, reduction, detections (admins)."""
    from hcdc.archive.exchange.hcifits_tdb import read_as_exchange

    with _viewing(root, as_user) as tdb:
        curation = tdb.curate()
        counts = curation.import_exchange(read_as_exchange(path), str(path), survey=survey)
    if json_output:
        emit_json(counts)
        return
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)


@hcifits_app.command("export")
def hcifits_export(
    reduction: int = typer.Argument(..., help="TDB reduction id (see 'hcdc tdb detections --json')."),
    out: Path = typer.Argument(..., help="HCI-FITS file to write."),
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Write a reduction of a Level 2 product as HCI-FITS (the account must see it: R15)."""
    with _viewing(root, as_user) as tdb:
        tdb.write_hcifits(reduction, out)
    console.print(f"written {out}", highlight=False)


@hcifits_app.command("check")
def hcifits_check(
    path: Path = typer.Argument(..., help="HCI-FITS file."), json_output: bool = JSON_OPTION
) -> None:
    """List how a file departs from the HCI-FITS spec (exit status 1 when it does)."""
    from hcdc.archive.exchange.hcifits import HciFitsError, check_hcifits

    try:
        problems = check_hcifits(path)
    except (OSError, HciFitsError) as exc:
        fail(f"{path}: {exc}")
    if json_output:
        emit_json({"file": str(path), "problems": problems})
    else:
        for problem in problems:
            console.print(f"- {problem}", highlight=False)
        console.print(
            f"{path}: {'follows the spec' if not problems else f'{len(problems)} departure(s)'}",
            highlight=False,
        )
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(target_app, name="target")
    app.add_typer(tdb_app, name="tdb")
    app.add_typer(hcifits_app, name="hcifits")
