"""The JSON Schema of the filespec language, generated from the pydantic models (core/filespec.py).

Shipped as `filespec.schema.json` beside this module, and referenced from the filespecs' first
line (`# yaml-language-server: $schema=...`), so that editors autocomplete keys and flag typos.
The schema describes the YAML as an editor types it (YAML 1.2: `0` is a number, `true` a
boolean), where the loader keeps every scalar as text; so texts that the contract compares as
text (`enum` values, bounds, boolean texts, `source`) also accept numbers and booleans there.
Regenerate after changing the models: `python -m ingest_pipeline.authoring.schema`; a test fails
while the shipped file differs from what the models give.
"""

import json
import re
import sys
from pathlib import Path

import yaml

from ingest_pipeline.core.filespec import (
    ENCODINGS,
    ENRICH_LOOKUP_RE,
    FIELD_NAME_RE,
    FORM_TYPE_RE,
    LOOKUP_RE,
    FileSpec,
)

SCHEMA_FILE = Path(__file__).with_name("filespec.schema.json")
SCALAR = {"type": ["string", "number", "boolean"]}

# One line per key for editors' hovers (the contract, shared/spec/filespec.md, says it fully).
DESCRIPTIONS = {
    "FileSpec": {
        "form_type": "The form type id ([a-z][a-z0-9_]*); equals the file's name.",
        "title": "Human name of the form type.",
        "version": "Bump when rules change; recorded with every upload.",
        "format": "How records are laid out.",
        "fields": "The columns, in output order.",
        "enrich": "Columns added from reference data.",
        "quality": "Quality gate settings.",
    },
    "RecordFormat": {
        "kind": "delimited or fixed_width.",
        "encoding": f"One of {', '.join(ENCODINGS)}; a UTF-8 BOM is always accepted and dropped.",
        "header": "Delimited only: the first record names the columns (matched by source, else name).",
        "delimiter": 'Delimited only: one character ("\\t" for tab, |, ;).',
        "quote": "Delimited only: the RFC 4180 quote character.",
        "skip_rows": "Physical lines to skip before the header or first record (banners).",
    },
    "FieldSpec": {
        "name": "Output column name ([A-Za-z_][A-Za-z0-9_]*), unique in the spec.",
        "source": "Header text when it differs from name.",
        "start": "Fixed width: 1-based first character.",
        "width": "Fixed width: width in characters.",
        "type": "string, integer, decimal, date, datetime or boolean.",
        "format": "date/datetime: a strftime pattern (default %Y-%m-%d); boolean: {true: [...], false: [...]}.",
        "required": "A null (empty after trimming) cell fails rule `required`.",
        "unique": "Rule `unique` across the whole upload.",
        "min_length": "At least this many characters of the trimmed text.",
        "max_length": "At most this many characters of the trimmed text.",
        "pattern": "A regular expression the whole trimmed text must match (Python re ∩ RE2).",
        "enum": "The allowed values, compared as text with the trimmed cell.",
        "minimum": "Inclusive lower bound, in the field's type.",
        "maximum": "Inclusive upper bound, in the field's type.",
        "lookup": "ref.<table>.<column> or company.<table>.<column>: the cell must be a value of that column.",
        "severity": "error (rejects the row) or warning (reported only).",
        "trim": "Strip surrounding whitespace before anything else (default true).",
        "description": "Free text; shown to clients in place of a pattern.",
    },
    "EnrichSpec": {
        "lookup": "ref.<table> or company.<table>.",
        "on": "File field -> table column to match on.",
        "add": "Output column -> table column to add.",
        "required": "A row with no match fails rule `enrich`.",
    },
    "Quality": {
        "max_error_rate": "Gate (0..1): the upload fails its quality check above this share of rejected rows.",
        "min_layout_match": "Share of the first records that must have the layout's shape (0 turns it off).",
    },
}
PATTERNS = {
    ("FileSpec", "form_type"): FORM_TYPE_RE.pattern,
    ("FieldSpec", "name"): FIELD_NAME_RE.pattern,
    ("FieldSpec", "lookup"): LOOKUP_RE.pattern,
    ("EnrichSpec", "lookup"): ENRICH_LOOKUP_RE.pattern,
}
TEXT_OR_SCALAR = {("FieldSpec", "source"), ("FieldSpec", "minimum"), ("FieldSpec", "maximum")}


def filespec_json_schema() -> dict:
    """The schema of a filespec YAML document (JSON Schema 2020-12)."""
    schema = FileSpec.model_json_schema(mode="validation")
    definitions = schema.get("$defs", {})
    models = {"FileSpec": schema, **definitions}
    for model_name, model in models.items():
        for key, prop in model.get("properties", {}).items():
            prop.pop("title", None)
            if key in DESCRIPTIONS.get(model_name, {}):
                prop["description"] = DESCRIPTIONS[model_name][key]
            if (model_name, key) in PATTERNS:
                prop["pattern"] = f"^(?:{PATTERNS[(model_name, key)]})$"
                prop.pop("anyOf", None)
                prop["type"] = "string"
            if (model_name, key) in TEXT_OR_SCALAR:
                prop.pop("anyOf", None)
                prop["type"] = ["string", "number", "boolean", "null"]
        if model_name == "FieldSpec":
            props = model["properties"]
            props["enum"] = {
                "description": props["enum"]["description"],
                "type": ["array", "null"],
                "items": SCALAR,
                "minItems": 1,
            }
            props["format"] = {
                "description": props["format"]["description"],
                "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "array", "items": SCALAR}},
                          {"type": "null"}],
            }  # fmt: skip
        if model_name == "RecordFormat":
            model["properties"]["encoding"]["examples"] = list(ENCODINGS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/ingest_pipeline/filespec.schema.json",
        "title": "ingest_pipeline filespec",
        "description": "One form type: how its upload files are laid out and the rules of every record and cell "
        "(shared/spec/filespec.md). Generated from ingest_pipeline/core/filespec.py.",
        **{key: value for key, value in schema.items() if key != "title"},
    }


class EditorLoader(yaml.SafeLoader):
    """YAML as an editor's language server types it (YAML 1.2 core schema): only true/false are
    booleans (`on`, `yes` stay text, unlike PyYAML's YAML 1.1), numbers and nulls as 1.2 writes them."""


EditorLoader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("float", r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", "-+.0123456789"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    EditorLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_regexp), list(_first))


def schema_text() -> str:
    return json.dumps(filespec_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
