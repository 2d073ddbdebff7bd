"""API keys: shown once, stored hashed, one company each, revoked at once."""

import json
import os
import stat

import pytest

from ingest_pipeline.api.keys import ApiKeyError, ApiKeyStore, keys_path


def test_a_key_is_stored_only_as_its_hash_and_names_its_company(tmp_path):
    store = ApiKeyStore(tmp_path)
    record, key = store.create("acme", note="acme's uploader")
    text = keys_path(tmp_path).read_text()
    assert key.startswith(f"ik_{record.key_id}_") and len(key) > 40
    secret = key.removeprefix(f"ik_{record.key_id}_")  # the secret may itself contain "_"
    assert key not in text and secret not in text
    assert json.loads(text)["keys"][0]["company_id"] == "acme"
    assert stat.S_IMODE(os.stat(keys_path(tmp_path)).st_mode) == 0o600
    assert store.company_of(key) == "acme"
    assert store.company_of(key + "x") is None and store.company_of("") is None and store.company_of(record.sha256) is None


def test_keys_of_two_companies_see_their_own_company(tmp_path):
    store = ApiKeyStore(tmp_path)
    _, acme = store.create("acme")
    _, globex = store.create("globex")
    assert (store.company_of(acme), store.company_of(globex)) == ("acme", "globex")
    assert [k.company_id for k in store.all()] == ["acme", "globex"]


def test_a_revoked_key_stops_working_in_a_server_that_already_read_the_file(tmp_path):
    server = ApiKeyStore(tmp_path)
    record, key = ApiKeyStore(tmp_path).create("acme")
    assert server.company_of(key) == "acme"
    ApiKeyStore(tmp_path).revoke(record.key_id)  # another process: the command line
    assert server.company_of(key) is None
    assert ApiKeyStore(tmp_path).revoke(record.key_id).revoked_at is not None  # again: no change, no error


def test_bad_company_ids_and_unknown_key_ids_are_one_sentence(tmp_path):
    store = ApiKeyStore(tmp_path)
    with pytest.raises(ApiKeyError, match="company id '../x' must be"):
        store.create("../x")
    with pytest.raises(ApiKeyError, match="no API key 'deadbeef'"):
        store.revoke("deadbeef")
    assert store.all() == [] and not [p for p in keys_path(tmp_path).parent.glob("*.tmp")]
