"""The command line of filespec authoring: `ingest-pipeline describe` and `ingest-pipeline check-spec`.

Kept apart from cli.py, which only registers these (`add_describe_commands`) and dispatches to them
(`run_describe_command`).
"""

import argparse
import sys
from pathlib import Path

from ingest_pipeline.core.errors import IngestError
from ingest_pipeline.core.filespec import FORM_TYPE_RE, FormatKind, load_filespec
from ingest_pipeline.core.home import resolve_filespecs, resolve_home

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class AuthoringUsageError(IngestError):
    """A bad argument of `describe` or `check-spec`."""


def add_describe_commands(commands, with_home) -> None:
    """Adds `describe` and `check-spec` to the `ingest-pipeline` subcommands."""
    describe = commands.add_parser(
        "describe", help="draft a filespec from a sample file (every rule with its evidence)"
    )
    describe.add_argument("file", help="a sample upload (CSV or other delimited text, or fixed width)")
    describe.add_argument("--out", required=True, help="the filespec YAML to write, named <form_type>.yaml")
    describe.add_argument("--format", choices=[kind.value for kind in FormatKind], help="the layout (default: sniffed)")
    describe.add_argument("--form-type", help="the form type id (default: the --out file's name)")
    describe.add_argument("--sample-rows", type=int, default=None, help="records read at most (default 50,000)")
    describe.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    describe.set_defaults(run_command=run_describe_command)

    check = commands.add_parser(
        "check-spec", help="validate a filespec file; --home: its reference data, --sample: a file"
    )
    check.add_argument("file")
    check.add_argument("--sample", help="judge this file with the filespec and print the message counts by field and rule "
                       "(nothing is registered or written to the warehouse)")  # fmt: skip
    check.add_argument("--company", help="company whose reference data is used (default: every company for --home; "
                       "acme or the only one for --sample)")  # fmt: skip
    with_home(check)
    check.set_defaults(run_command=run_describe_command)


def run_describe_command(args: argparse.Namespace) -> int:
    try:
        return {"describe": cmd_describe, "check-spec": cmd_check_spec}[args.command](args)
    except AuthoringUsageError as error:
        print(f"ingest-pipeline: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def cmd_describe(args: argparse.Namespace) -> int:
    from ingest_pipeline.authoring.describe import DEFAULT_SAMPLE_ROWS, DescribeError, describe_sample, render_yaml

    source, out = Path(args.file), Path(args.out)
    form_type = args.form_type or out.stem
    if not FORM_TYPE_RE.fullmatch(form_type):
        raise AuthoringUsageError(
            f"form type {form_type!r} is not an id ([a-z][a-z0-9_]*); name --out <form_type>.yaml or give --form-type"
        )
    if out.suffix.lower() not in (".yaml", ".yml") or out.stem != form_type:
        raise AuthoringUsageError(
            f"--out {out} must be named {form_type}.yaml (a filespec's form_type equals its file name)"
        )
    if out.exists() and not args.force:
        raise AuthoringUsageError(f"--out {out} exists; give --force to overwrite it")
    sample_rows = args.sample_rows if args.sample_rows is not None else DEFAULT_SAMPLE_ROWS
    if sample_rows < 1:
        raise AuthoringUsageError("--sample-rows must be 1 or more")
    try:
        draft = describe_sample(source, form_type, args.format, sample_rows)
    except DescribeError as error:
        print(f"ingest-pipeline: {source}: {error}", file=sys.stderr)
        return EXIT_FAILED
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_yaml(draft, out), encoding="utf-8")
    spec = load_filespec(out)  # the draft must be a valid filespec: a failure here is a bug
    print(f"wrote {out}: {draft.summary()} of {source}")
    for note in draft.notes[1:]:
        print(f"  note: {note}")
    print(f"  review its rules, then: ingest-pipeline check-spec {out} --sample {source}")
    assert spec.form_type == form_type
    return EXIT_OK


def cmd_check_spec(args: argparse.Namespace) -> int:
    spec = load_filespec(args.file)
    print(
        f"{args.file}: valid filespec for form type {spec.form_type!r} (version {spec.version}, {len(spec.fields)} fields)"
    )
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    failed = False
    if args.home or args.sample:
        # Reading tables and files needs polars; a plain check stays as quick as loading the YAML.
        from ingest_pipeline.authoring.check import (
            companies_with_reference_data,
            format_counts,
            judge_sample,
            reference_problems,
        )

    if args.home:
        if not spec.reference_tables:
            print(f"{args.file}: names no reference table (no lookup, no enrich)")
        else:
            problems = reference_problems(spec, home, filespecs, args.company)
            for problem in problems:
                print(f"{args.file}: {problem}", file=sys.stderr)
            if problems:
                failed = True
            else:
                tables = ", ".join(f"{scope}.{table}" for scope, table in spec.reference_tables)
                print(f"{args.file}: every lookup and enrich table and column exists ({tables})")
    if args.sample:
        sample = Path(args.sample)
        if not sample.is_file():
            raise AuthoringUsageError(f"--sample {sample}: no such file")
        company = args.company
        if company is None:
            known = companies_with_reference_data(home, filespecs)
            company = "acme" if "acme" in known or not known else known[0]
        result = judge_sample(spec, sample, company, home, filespecs)
        print(f"{sample}: {result.rows_total:,} rows, {result.rows_rejected:,} rejected, {result.messages:,} messages"
              f" (judged as company {company}; nothing registered or written)")  # fmt: skip
        if result.failure:
            print(f"{sample}: the upload would fail: {result.failure}", file=sys.stderr)
            failed = True
        if result.counts:
            for line in format_counts(result):
                print(f"  {line}")
        failed = failed or result.rows_rejected > 0  # the sample does not ingest cleanly: a gate for CI
    return EXIT_FAILED if failed else EXIT_OK
