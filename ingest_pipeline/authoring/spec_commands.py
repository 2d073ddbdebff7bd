"""The command line of filespec layouts and versions: `import-spec`, `export-spec`, `spec-diff`,
and `backfill --dry-run --impact`.

Kept apart from cli.py, which only registers these (`add_spec_commands`) and dispatches to them.
"""

import argparse
import sys
from pathlib import Path

from ingest_pipeline.core.filespec import FORM_TYPE_RE, load_filespec, load_form_type
from ingest_pipeline.core.home import resolve_filespecs, resolve_home


def load_any_named(path: str):
    """A filespec file kept under any name (payroll.v1.yaml): spec-diff and --spec compare versions."""
    return load_filespec(path, named_by_form_type=False)

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2


def add_spec_commands(commands, with_home) -> None:
    """Adds `import-spec`, `export-spec`, `spec-diff`, and `--impact` / `--spec` to `backfill`."""
    imp = commands.add_parser(
        "import-spec", help="turn a layout sheet (.xlsx, .xls, .csv; one row per field) into a filespec"
    )
    imp.add_argument("layout", help="the layout sheet")
    imp.add_argument("--form-type", required=True, help="the new form type's id ([a-z][a-z0-9_]*)")
    imp.add_argument("--out", required=True, help="the filespec to write (<form_type>.yaml)")
    imp.add_argument("--sheet", help="the sheet to read (default: the first with a recognisable header row)")

    exp = commands.add_parser("export-spec", help="write a form type's data dictionary for clients (.xlsx or .html)")
    exp.add_argument("spec", help="a form type of the home's filespecs, or a filespec .yaml file")
    exp.add_argument("--out", required=True, help="the .xlsx or .html file to write")
    exp.add_argument("--company", help="also list this company's own lookup lists (company.<table>)")
    with_home(exp)

    diff = commands.add_parser(
        "spec-diff", help="list the rule changes between two filespecs (exit 0 same, 1 different)"
    )
    diff.add_argument("old")
    diff.add_argument("new")
    for parser in (imp, exp, diff):
        parser.set_defaults(run_command=run_spec_command)

    backfill = commands.choices["backfill"]
    backfill.add_argument("--impact", action="store_true",
                          help="with --dry-run: judge each upload's original file again under the new filespec and print, "
                          "per rule, how many rows would go accepted -> rejected and back (nothing is published)")  # fmt: skip
    backfill.add_argument("--spec", help="with --impact: the new filespec (default: the home's current one)")


def check_backfill_args(args: argparse.Namespace, usage_error) -> None:
    if args.spec and not args.impact:
        raise usage_error("--spec only goes with --impact")
    if args.impact and not args.dry_run:
        raise usage_error("--impact only goes with --dry-run (it judges the uploads again without publishing anything)")


def run_spec_command(args: argparse.Namespace) -> int:
    return {"import-spec": cmd_import_spec, "export-spec": cmd_export_spec, "spec-diff": cmd_spec_diff}[args.command](
        args
    )


def _usage(message: str) -> int:
    print(f"ingest-pipeline: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def cmd_import_spec(args: argparse.Namespace) -> int:
    from ingest_pipeline.authoring.layout_import import LayoutError, import_layout

    if not FORM_TYPE_RE.fullmatch(args.form_type):
        return _usage(f"--form-type {args.form_type!r} is not a form type name ([a-z][a-z0-9_]*)")
    out = Path(args.out)
    if out.suffix.lower() not in (".yaml", ".yml") or out.stem != args.form_type:
        return _usage(f"--out {out} must be {args.form_type}.yaml (a filespec's name is its form type)")
    try:
        result = import_layout(Path(args.layout), args.form_type, sheet=args.sheet)
    except LayoutError as error:
        return _usage(str(error))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.yaml_text, encoding="utf-8")
    spec = load_filespec(out)  # what was written must load; a bug if not
    for line in result.report_lines():
        print(line)
    print(f"wrote {out}: {spec.format.kind.value} filespec with {len(spec.fields)} field(s), "
          f"{len(result.unmapped)} thing(s) not mapped (listed above and as comments in the file)")  # fmt: skip
    return EXIT_OK


def _spec_of(name: str, filespecs: Path):
    """A form type of the filespecs folder, or a filespec file under any name (`roster.v2.yaml`)."""
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        return load_any_named(name)
    return load_form_type(name, filespecs)


def cmd_export_spec(args: argparse.Namespace) -> int:
    from ingest_pipeline.authoring.dictionary_export import build_dictionary, write_html, write_xlsx

    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    out = Path(args.out)
    if out.suffix.lower() not in (".xlsx", ".html", ".htm"):
        return _usage(f"--out {out} must name an .xlsx or .html file")
    spec = _spec_of(args.spec, filespecs)
    dictionary = build_dictionary(spec, home=home, filespecs_dir=filespecs, company_id=args.company)
    out.parent.mkdir(parents=True, exist_ok=True)
    (write_xlsx if out.suffix.lower() == ".xlsx" else write_html)(dictionary, out)
    print(f"wrote {out}: the data dictionary of {spec.form_type!r} version {spec.version} "
          f"({len(dictionary.fields)} fields, {len(dictionary.lists)} list(s))")  # fmt: skip
    for note in dictionary.notes:
        print(f"  note: {note}")
    return EXIT_OK


def cmd_spec_diff(args: argparse.Namespace) -> int:
    from ingest_pipeline.authoring.spec_diff import diff_specs

    old, new = load_any_named(args.old), load_any_named(args.new)
    lines = diff_specs(old, new)
    for line in lines:
        print(line)
    if not lines:
        print(f"{args.old} and {args.new} have the same rules")
        return EXIT_OK
    return EXIT_DIFFERENT


def backfill_impact(
    args: argparse.Namespace, *, home: Path, filespecs: Path, spec, uploads: list[dict], scope: str
) -> int:
    """`backfill --dry-run --impact`: the uploads judged again under the new filespec, compared row by row."""
    from ingest_pipeline.authoring.impact import impact_lines, upload_impact

    new_spec, new_label = spec, f"{filespecs / (spec.form_type + '.yaml')} (version {spec.version})"
    if args.spec:
        new_spec = load_any_named(args.spec)
        if new_spec.form_type != spec.form_type:
            return _usage(f"--spec {args.spec} is a filespec of {new_spec.form_type!r}, not of {spec.form_type!r}")
        new_label = f"{args.spec} (version {new_spec.version})"
    impacts = [upload_impact(u, new_spec, home=home, filespecs_dir=filespecs, current_spec=spec) for u in uploads]
    print(f"{len(uploads)} upload(s) of {scope}")
    for line in impact_lines(impacts, "the filespec each upload was judged by", new_label):
        print(line)
    return EXIT_OK
