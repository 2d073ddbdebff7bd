"""The one company id rule, and the reference lookup that must never leave its folder."""

import pytest

from ingest_pipeline.core.companies import COMPANY_ID_RULE, company_id_problem, is_company_id
from ingest_pipeline.core.errors import ReferenceDataError
from ingest_pipeline.core.reference import find_reference_table


@pytest.mark.parametrize("company_id", ["acme", "globex-2", "a.b", "_test", "ACME_01", "x" * 100])
def test_valid_company_ids(company_id):
    assert is_company_id(company_id) and company_id_problem(company_id) is None


@pytest.mark.parametrize(
    "company_id",
    ["", ".", "..", ".hidden", "-rf", "a/b", "../globex", "a\\b", "ac me", "a\nb", "é", "a\x00", "x" * 101],
)
def test_invalid_company_ids_are_named_in_one_sentence(company_id):
    problem = company_id_problem(company_id)
    shown = company_id if len(company_id) <= 60 else company_id[:57] + "..."
    assert problem == f"company id {shown!r} must be {COMPANY_ID_RULE}"
    assert "\n" not in problem and not is_company_id(company_id)


@pytest.fixture
def reference_home(tmp_path):
    home = tmp_path / "home"
    (home / "reference" / "company" / "acme").mkdir(parents=True)
    (home / "reference" / "company" / "acme" / "users.csv").write_text("user_id\nau1\n")
    (home / "reference" / "ref").mkdir()
    (home / "reference" / "ref" / "users.csv").write_text("user_id\nshared\n")
    (home / "users.csv").write_text("user_id\nnot reference data\n")
    return home


def test_reference_lookup_finds_the_companys_table(reference_home, tmp_path):
    found = find_reference_table("company", "users", "acme", reference_home, tmp_path / "filespecs")
    assert found == reference_home / "reference" / "company" / "acme" / "users.csv"


@pytest.mark.parametrize("company_id", ["..", ".", "../..", "acme/../..", ""])
def test_reference_lookup_refuses_company_ids_that_leave_its_folder(reference_home, tmp_path, company_id):
    # `company/../users.csv` would leave the company folders; `company/../../users.csv` the reference folder.
    with pytest.raises(ReferenceDataError, match="cannot be looked up: company id"):
        find_reference_table("company", "users", company_id, reference_home, tmp_path / "filespecs")


@pytest.mark.parametrize("table", ["../users", "..", "a/b", ""])
def test_reference_lookup_refuses_table_names_that_are_paths(reference_home, tmp_path, table):
    with pytest.raises(ReferenceDataError, match="reference table name"):
        find_reference_table("ref", table, "acme", reference_home, tmp_path / "filespecs")
