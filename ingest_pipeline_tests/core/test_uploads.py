"""Hashing an upload (core/uploads.hash_stream): a reader thread runs ahead of the hash."""

import hashlib
import io
import threading

import pytest

from ingest_pipeline.core import uploads
from ingest_pipeline.core.uploads import compute_upload_id, hash_stream


@pytest.mark.parametrize("size", [0, 1, uploads.HASH_BLOCK_BYTES, uploads.HASH_BLOCK_BYTES * 5 + 123])
def test_the_hash_and_size_are_those_of_all_the_bytes_in_order(tmp_path, size):
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    with open(path, "rb") as stream:  # a file: read with read-ahead advice
        assert hash_stream(stream) == (hashlib.sha256(data).hexdigest(), size)
    assert hash_stream(io.BytesIO(data)) == (hashlib.sha256(data).hexdigest(), size)  # no file number


class _FailsAfter(io.RawIOBase):
    def __init__(self, blocks: int):
        self.left = blocks

    def read(self, size: int = -1) -> bytes:
        if self.left == 0:
            raise OSError("the connection to the storage account was reset")
        self.left -= 1
        return b"x" * size


def test_a_read_error_is_raised_in_the_callers_thread_and_no_reader_is_left():
    before = threading.active_count()
    with pytest.raises(OSError, match="connection to the storage account was reset"):
        hash_stream(_FailsAfter(uploads.READ_AHEAD_BLOCKS * 3))
    assert threading.active_count() == before


def test_the_upload_id_depends_on_company_form_type_and_content():
    ids = {compute_upload_id(c, f, h) for c in ("a", "b") for f in ("x", "y") for h in ("0" * 64, "1" * 64)}
    assert len(ids) == 8 and all(len(i) == uploads.UPLOAD_ID_LENGTH for i in ids)
    assert compute_upload_id("a", "x", "0" * 64) == compute_upload_id("a", "x", "0" * 64)
