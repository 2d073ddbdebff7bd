"""The shipped JSON Schema of the filespec language stays in step with the pydantic models."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from ingest_pipeline.authoring.describe import describe_sample, render_yaml
from ingest_pipeline.authoring.schema import SCHEMA_FILE, EditorLoader, schema_text
from ingest_pipeline.core.filespec import EnrichSpec, FieldSpec, FileSpec, Quality, RecordFormat, load_filespec

PROJECT = Path(__file__).resolve().parents[2]
FILESPECS = sorted((PROJECT / "filespecs").glob("*.yaml"))
SCHEMA = json.loads(SCHEMA_FILE.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_shipped_schema_is_what_the_models_give():
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate it: python -m ingest_pipeline.authoring.schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("model", [FileSpec, RecordFormat, FieldSpec, EnrichSpec, Quality])
def test_every_model_key_is_in_the_schema_and_nothing_else(model):
    node = SCHEMA if model is FileSpec else SCHEMA["$defs"][model.__name__]
    assert set(node["properties"]) == set(model.model_fields)
    assert node["additionalProperties"] is False  # a typo is flagged in the editor too


@pytest.mark.parametrize("path", FILESPECS, ids=lambda p: p.name)
def test_shipped_filespecs_validate_and_reference_the_schema(path):
    first_line = path.read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=../ingest_pipeline/authoring/filespec.schema.json"
    assert (path.parent / first_line.split("=", 1)[1]).resolve() == SCHEMA_FILE
    assert list(VALIDATOR.iter_errors(yaml.load(path.read_text(), Loader=EditorLoader))) == []
    load_filespec(path)  # the loader takes the comment line


def test_the_schema_flags_typos_and_wrong_values():
    def errors(document: str) -> list[str]:
        return [error.message for error in VALIDATOR.iter_errors(yaml.load(document, Loader=EditorLoader))]

    assert any("'feilds' was unexpected" in e for e in errors("form_type: x\nfeilds: [{name: a}]\n"))
    assert errors("form_type: x\nfields: [{name: a, type: integer, minimum: 0, enum: [1, 2]}]\n") == []
    assert errors("form_type: x\nfields: [{name: a, type: text}]\n")
    assert errors("form_type: Bad\nfields: [{name: a}]\n")
    assert errors("form_type: x\nfields: [{name: a, lookup: ref.states}]\n")


def test_a_described_draft_validates_against_the_schema(tmp_path):
    sample = tmp_path / "d.csv"
    sample.write_text("id,when,kind\n1,2024-01-31,a\n2,2024-02-01,a\n3,2024-02-02,b\n4,2024-02-03,b\n")
    out = tmp_path / "d.yaml"
    out.write_text(render_yaml(describe_sample(sample, "d"), out))
    assert list(VALIDATOR.iter_errors(yaml.load(out.read_text(), Loader=EditorLoader))) == []
