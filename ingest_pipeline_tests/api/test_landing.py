"""HTTP uploads land whole, under the project's upload id, once; the sensor's listing never sees part of one."""

import hashlib

import pytest

from ingest_pipeline.api import landing
from ingest_pipeline.api.landing import LandedRecords, UploadReceiver, landed_filename
from ingest_pipeline.api.problems import Problem
from ingest_pipeline.core.storage import LocalLandingStorage
from ingest_pipeline.core.uploads import compute_upload_id


def receive(storage, records, body: bytes, pieces: int = 7, status=None, max_bytes=10**9, company="acme"):
    receiver = UploadReceiver(storage, company, "employee_roster", "roster.csv", max_bytes)
    step = max(1, len(body) // pieces)
    for start in range(0, len(body), step):
        block = receiver.feed(body[start : start + step])
        if block is not None:
            receiver.write(block)
    return receiver, receiver.finish(records, status or (lambda upload_id: None))


def listed(storage):
    return [blob.path for blob in storage.list_blobs()]


def test_the_file_lands_whole_under_the_projects_upload_id(tmp_path, monkeypatch):
    monkeypatch.setattr(landing, "WRITE_BLOCK_BYTES", 1000)  # several blocks
    storage, records = LocalLandingStorage(tmp_path / "landing"), LandedRecords(tmp_path)
    body = b"employee_id,name\n" + b"E1,x\n" * 2000
    receiver, (record, landed) = receive(storage, records, body)
    assert landed and record.upload_id == compute_upload_id("acme", "employee_roster", hashlib.sha256(body).hexdigest())
    (path,) = listed(storage)
    assert path.startswith("acme/employee_roster/") and path.endswith("-roster.csv") and path == record.path
    assert (tmp_path / "landing" / path).read_bytes() == body
    assert records.get(record.upload_id) == record
    assert not list((tmp_path / "landing").rglob("*.part"))


def test_while_the_body_arrives_the_listing_shows_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(landing, "WRITE_BLOCK_BYTES", 10)
    storage = LocalLandingStorage(tmp_path / "landing")
    receiver = UploadReceiver(storage, "acme", "employee_roster", None, 10**6)
    receiver.write(receiver.feed(b"a,b\n1,2\n3,4\n"))
    assert listed(storage) == [] and len(list((tmp_path / "landing").rglob(".*.part"))) == 1
    receiver.abort()  # the client went away
    assert listed(storage) == [] and not list((tmp_path / "landing").rglob("*.part"))


def test_the_same_bytes_again_land_no_second_file(tmp_path):
    storage, records = LocalLandingStorage(tmp_path / "landing"), LandedRecords(tmp_path)
    body = b"a,b\n1,2\n"
    _, (first, landed) = receive(storage, records, body)
    _, (second, again) = receive(storage, records, body, status=lambda upload_id: "completed")
    assert landed and not again and second.upload_id == first.upload_id and len(listed(storage)) == 1
    _, (other, other_landed) = receive(storage, records, body, company="globex")
    assert other_landed and other.upload_id != first.upload_id and len(listed(storage)) == 2


def test_a_failed_upload_sent_again_lands_again_so_that_it_runs_again(tmp_path):
    storage, records = LocalLandingStorage(tmp_path / "landing"), LandedRecords(tmp_path)
    receive(storage, records, b"a,b\n1,2\n")
    _, (_, landed) = receive(storage, records, b"a,b\n1,2\n", status=lambda upload_id: "failed")
    assert landed and len(listed(storage)) == 2


def test_empty_and_oversized_bodies_are_refused_and_leave_nothing(tmp_path):
    storage, records = LocalLandingStorage(tmp_path / "landing"), LandedRecords(tmp_path)
    with pytest.raises(Problem, match="body is empty") as empty:
        receive(storage, records, b"")
    assert empty.value.status == 400
    receiver = UploadReceiver(storage, "acme", "employee_roster", None, max_bytes=5)
    with pytest.raises(Problem, match="larger than this server's limit of 5 bytes") as large:
        receiver.feed(b"123456")
    receiver.abort()
    assert large.value.status == 413 and listed(storage) == [] and not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize(
    ("given", "kept"),
    [(None, "upload"), ("roster.csv", "roster.csv"), ("../../etc/passwd", "passwd"), (".hidden.csv", "hidden.csv"),
     ("a b;c'.csv", "a_b_c_.csv"), ("x.csv.part", "x.csv"), ("C:\\data\\x.csv", "x.csv"), ("..", "upload"),
     ("é.csv", "_.csv")],
)  # fmt: skip
def test_a_clients_file_name_becomes_one_plain_visible_name(given, kept):
    assert landed_filename(given) == kept
