"""Landing storage: the same behaviours against a local folder and a real Azurite container."""

import io
import os
from datetime import UTC
from pathlib import Path

import pytest

from ingest_pipeline.core.errors import StorageError
from ingest_pipeline.core.storage import (
    AzureBlobLandingStorage,
    LandingStorage,
    LocalLandingStorage,
    open_source,
    parse_landing_path,
)


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azurite)])
def backend(request: pytest.FixtureRequest, tmp_path) -> tuple[str, LandingStorage, object]:
    """(kind, storage, factory for open_source) for each backend; Azure under a prefix."""
    if request.param == "local":
        return "local", LocalLandingStorage(tmp_path / "landing"), None
    azurite = request.getfixturevalue("azurite")
    container = azurite.container_client()
    storage = AzureBlobLandingStorage(container, prefix="landing/")

    def factory(account: str, container_name: str):
        assert account == azurite.account_name
        return azurite.container_client(container_name, create=False)

    return "azure", storage, factory


def test_put_then_list_is_sorted_relative_and_sized(backend):
    _, storage, _ = backend
    files = {
        "globex/payroll/b.csv": b"x" * 10,
        "acme/employee_roster/2024-02.csv": b"two\n",
        "acme/employee_roster/2024-01.csv": b"one,1\n",
        "acme/employee_roster-old/x.csv": b"old",
        "acme/claims_extract/c.csv": b"",
    }
    for path, data in files.items():
        storage.put_blob(path, data)

    listed = list(storage.list_blobs())
    assert [blob.path for blob in listed] == sorted(files)
    assert {blob.path: blob.size for blob in listed} == {path: len(data) for path, data in files.items()}

    assert [b.path for b in storage.list_blobs("acme/employee_roster/")] == [
        "acme/employee_roster/2024-01.csv",
        "acme/employee_roster/2024-02.csv",
    ]
    # A prefix is a string prefix, as in Azure, not a folder name.
    assert [b.path for b in storage.list_blobs("acme/employee_roster")] == [
        "acme/employee_roster-old/x.csv",
        "acme/employee_roster/2024-01.csv",
        "acme/employee_roster/2024-02.csv",
    ]
    assert [b.path for b in storage.list_blobs("acme/employee_roster/2024-02")] == ["acme/employee_roster/2024-02.csv"]
    assert [b.path for b in storage.list_blobs("glo")] == ["globex/payroll/b.csv"]
    assert list(storage.list_blobs("nobody/")) == []


def test_listing_skips_hidden_and_temporary_files(backend):
    _, storage, _ = backend
    for path in [
        "acme/payroll/ok.csv",
        "acme/payroll/.hidden.csv",
        "acme/payroll/upload.csv.tmp",
        "acme/payroll/upload.csv.part",
        "acme/.work/chunk-0001.parquet",
    ]:
        storage.put_blob(path, b"data")
    assert [b.path for b in storage.list_blobs()] == ["acme/payroll/ok.csv"]


def test_local_listing_of_a_missing_landing_folder_is_empty(tmp_path):
    assert list(LocalLandingStorage(tmp_path / "nothing-here").list_blobs()) == []


def test_local_listing_walks_only_the_prefix_folder(tmp_path, monkeypatch):
    storage = LocalLandingStorage(tmp_path)
    for path in ["acme/payroll/a.csv", "acme/claims_extract/c.csv", "globex/payroll/b.csv"]:
        storage.put_blob(path, b"x")
    scanned = []
    real_scandir = os.scandir

    def recording_scandir(directory):
        # The listing scans folders by descriptor (opened without following links): name the folder.
        folder = os.readlink(f"/proc/self/fd/{directory}") if isinstance(directory, int) else directory
        scanned.append(os.path.relpath(folder, tmp_path))
        return real_scandir(directory)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    assert [b.path for b in storage.list_blobs("acme/pay")] == ["acme/payroll/a.csv"]
    assert scanned == ["acme", os.path.join("acme", "payroll")]


def test_etag_changes_when_content_changes(backend):
    _, storage, _ = backend
    path = "acme/payroll/2024.csv"
    storage.put_blob(path, b"version 1")
    (first,) = storage.list_blobs(path)
    (again,) = storage.list_blobs(path)
    assert again.etag == first.etag
    storage.put_blob(path, b"version 2")  # same size
    (second,) = storage.list_blobs(path)
    assert second.etag != first.etag
    storage.put_blob(path, b"version three")
    (third,) = storage.list_blobs(path)
    assert third.etag not in (first.etag, second.etag)
    assert third.size == len(b"version three")


@pytest.mark.azurite
def test_azure_metadata_round_trips(azurite):
    storage = AzureBlobLandingStorage(azurite.container_client())
    storage.put_blob("acme/payroll/m.csv", b"a,b\n", metadata={"uploaded_by": "jane", "batch": "7"})
    storage.put_blob("acme/payroll/n.csv", b"a,b\n")
    listed = {b.path: b.metadata for b in storage.list_blobs("acme/")}
    assert listed == {"acme/payroll/m.csv": {"uploaded_by": "jane", "batch": "7"}, "acme/payroll/n.csv": {}}


def test_local_metadata_is_empty(tmp_path):
    storage = LocalLandingStorage(tmp_path)
    storage.put_blob("acme/payroll/m.csv", b"x", metadata={"uploaded_by": "jane"})
    assert [b.metadata for b in storage.list_blobs()] == [{}]


@pytest.mark.azurite
def test_azure_prefix_is_applied_and_stripped(azurite):
    container = azurite.container_client()
    AzureBlobLandingStorage(container, prefix="/incoming/").put_blob("acme/payroll/a.csv", b"a")
    AzureBlobLandingStorage(container).put_blob("outside/payroll/b.csv", b"b")
    assert [b.path for b in AzureBlobLandingStorage(container, prefix="incoming").list_blobs()] == [
        "acme/payroll/a.csv"
    ]
    assert [b.name for b in container.list_blobs()] == ["incoming/acme/payroll/a.csv", "outside/payroll/b.csv"]


@pytest.mark.azurite
def test_azure_listing_skips_blobs_that_are_not_block_blobs(azurite):
    container = azurite.container_client()
    container.get_blob_client("acme/payroll/growing.csv").create_append_blob()
    storage = AzureBlobLandingStorage(container)
    storage.put_blob("acme/payroll/done.csv", b"x")
    assert [b.path for b in storage.list_blobs()] == ["acme/payroll/done.csv"]


@pytest.mark.azurite
def test_azure_uncommitted_upload_is_not_listed(azurite):
    container = azurite.container_client()
    blob = container.get_blob_client("acme/payroll/big.csv")
    blob.stage_block("b1", b"first half,")
    storage = AzureBlobLandingStorage(container)
    assert list(storage.list_blobs()) == []
    blob.stage_block("b2", b"second half\n")
    blob.commit_block_list(["b1", "b2"])
    assert [(b.path, b.size) for b in storage.list_blobs()] == [("acme/payroll/big.csv", 23)]


def test_streaming_read_in_small_pieces_equals_the_content(backend):
    _, storage, _ = backend
    content = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of any read size
    storage.put_blob("acme/payroll/big.bin", io.BytesIO(content))
    pieces = []
    with storage.open_blob("acme/payroll/big.bin") as stream:
        while piece := stream.read(1000):
            assert len(piece) <= 1000
            pieces.append(piece)
    assert b"".join(pieces) == content
    with storage.open_blob("acme/payroll/big.bin") as stream:
        assert stream.read(3) == content[:3]
        assert stream.read() == content[3:]


def container_downloading_in_64k_pieces(azurite):
    """A fresh Azurite container whose client downloads a blob 64 KiB at a time."""
    from azure.storage.blob import ContainerClient

    return ContainerClient(
        account_url=azurite.account_url,
        container_name=azurite.container_client().container_name,
        credential=azurite.account_key,
        max_single_get_size=64 * 1024,
        max_chunk_get_size=64 * 1024,
    )


@pytest.mark.azurite
def test_azure_read_streams_in_chunks(azurite):
    """A blob larger than the download chunk arrives in several requests, never as one."""
    small_chunks = container_downloading_in_64k_pieces(azurite)
    content = os.urandom(300 * 1024)
    storage = AzureBlobLandingStorage(small_chunks)
    storage.put_blob("acme/payroll/r.bin", content)
    with storage.open_blob("acme/payroll/r.bin") as stream:
        assert stream.read(10) == content[:10]
        assert b"".join(iter(lambda: stream.read(7000), b"")) == content[10:]


@pytest.mark.azurite
def test_azure_blob_replaced_mid_read_is_a_storage_error(azurite):
    small_chunks = container_downloading_in_64k_pieces(azurite)
    storage = AzureBlobLandingStorage(small_chunks)
    storage.put_blob("acme/payroll/r.bin", os.urandom(300 * 1024))
    with storage.open_blob("acme/payroll/r.bin") as stream:
        stream.read(1000)
        storage.put_blob("acme/payroll/r.bin", os.urandom(300 * 1024))
        with pytest.raises(StorageError, match="replaced while it was being read"):
            stream.read()


def test_source_uri_opens_again(backend):
    kind, storage, factory = backend
    storage.put_blob("acme/payroll/s.csv", b"id,name\n1,Ann\n")
    uri = storage.source_uri("acme/payroll/s.csv")
    if kind == "local":
        assert os.path.isabs(uri) and uri.endswith(os.path.join("acme", "payroll", "s.csv"))
    else:
        container = storage.container_client
        assert uri == f"azure://devstoreaccount1/{container.container_name}/landing/acme/payroll/s.csv"
    with open_source(uri, azure_container_client_factory=factory) as stream:
        assert stream.read() == b"id,name\n1,Ann\n"


def test_open_source_of_azure_uri_without_a_client_is_a_storage_error():
    with pytest.raises(StorageError, match="no Azure Blob Storage connection"):
        open_source("azure://acct/uploads/acme/payroll/a.csv")
    with pytest.raises(StorageError, match="is not an azure://"):
        open_source("azure://acct/uploads", azure_container_client_factory=lambda a, c: None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("acme/employee_roster/2024-01.csv", ("acme", "employee_roster", "2024-01.csv")),
        ("acme/employee_roster/with space.csv", ("acme", "employee_roster", "with space.csv")),
        ("acme/employee_roster", None),
        ("acme/employee_roster/sub/2024.csv", None),
        ("/acme/employee_roster/2024.csv", None),
        ("acme//2024.csv", None),
        ("acme/employee_roster/", None),
        ("acme/../x.csv", None),
        ("acme/./x.csv", None),
        ("acme\\payroll\\x.csv", None),
        ("acme/payroll/x\\..\\y.csv", None),
        ("acme/payroll/x\n.csv", None),
        ("", None),
    ],
)
def test_parse_landing_path(path, expected):
    assert parse_landing_path(path) == expected


def test_missing_blob_is_a_storage_error(backend):
    kind, storage, factory = backend
    with pytest.raises(StorageError, match="does not exist") as raised:
        storage.open_blob("acme/payroll/missing.csv")
    assert "\n" not in str(raised.value)
    with pytest.raises(StorageError, match="does not exist"):
        open_source(storage.source_uri("acme/payroll/missing.csv"), azure_container_client_factory=factory)


@pytest.mark.azurite
def test_azure_missing_container_is_a_storage_error(azurite):
    storage = AzureBlobLandingStorage(azurite.container_client("never-created", create=False))
    with pytest.raises(StorageError, match="does not exist"):
        list(storage.list_blobs())


def test_last_modified_is_utc(backend):
    _, storage, _ = backend
    storage.put_blob("acme/payroll/t.csv", b"t")
    (blob,) = storage.list_blobs()
    assert blob.last_modified.tzinfo is not None
    assert blob.last_modified.astimezone(UTC) == blob.last_modified


def test_a_local_file_moved_in_with_an_old_mtime_still_looks_new(tmp_path):
    storage = LocalLandingStorage(tmp_path / "landing")
    old = tmp_path / "old.csv"
    old.write_text("a\n")
    os.utime(old, (0, 0))  # as `cp -p` or `rsync -a` would leave it
    target = tmp_path / "landing" / "acme" / "roster" / "old.csv"
    target.parent.mkdir(parents=True)
    old.rename(target)
    (info,) = list(storage.list_blobs())
    assert info.last_modified.year >= 2024


# --- The landing storage trusts nothing below its root ----------------------------------------


@pytest.fixture
def landing(tmp_path) -> LocalLandingStorage:
    """A landing folder with one real upload of globex's, and a folder outside it holding a secret."""
    storage = LocalLandingStorage(tmp_path / "landing")
    storage.put_blob("globex/employee_roster/roster.csv", b"globex's roster\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.csv").write_bytes(b"not for the pipeline\n")
    return storage


def refusals(storage: LocalLandingStorage, prefix: str = "") -> dict[str, str | None]:
    return {blob.path: blob.refused for blob in storage.list_blobs(prefix)}


def test_a_link_to_a_file_is_listed_as_refused_and_never_opened(landing, tmp_path):
    folder = landing.root / "acme" / "employee_roster"
    folder.mkdir(parents=True)
    (folder / "outside.csv").symlink_to(tmp_path / "outside" / "secret.csv")
    (folder / "inside.csv").symlink_to(landing.root / "globex" / "employee_roster" / "roster.csv")
    listed = refusals(landing)
    assert listed.pop("globex/employee_roster/roster.csv") is None
    assert listed == {"acme/employee_roster/inside.csv": "is a symbolic link; only regular files inside the landing folder are read",
                      "acme/employee_roster/outside.csv": "is a symbolic link; only regular files inside the landing folder are read"}  # fmt: skip
    for path in listed:
        with pytest.raises(StorageError, match="is not read: it is a symbolic link"):
            landing.open_blob(path)
        with pytest.raises(StorageError, match="is not read: it is a symbolic link"):
            open_source(landing.source_uri(path), landing_root=landing.root)


def test_a_folder_linked_to_another_companys_lists_nothing_of_theirs(landing):
    (landing.root / "evilco").mkdir()
    (landing.root / "evilco" / "employee_roster").symlink_to(Path("..") / "globex" / "employee_roster")
    assert refusals(landing) == {
        "evilco/employee_roster": "is a symbolic link; only regular files inside the landing folder are read",
        "globex/employee_roster/roster.csv": None,
    }
    # Listed by prefix, through the link: the link is the one entry, nothing behind it.
    assert refusals(landing, "evilco/employee_roster/") == {
        "evilco/employee_roster": "is a symbolic link; only regular files inside the landing folder are read"
    }
    with pytest.raises(StorageError, match="a folder on its path is not a folder"):
        landing.open_blob("evilco/employee_roster/roster.csv")


def test_a_link_to_a_system_folder_costs_one_entry(landing):
    (landing.root / "acme").mkdir()
    (landing.root / "acme" / "etc").symlink_to("/etc")
    (landing.root / "root_link").symlink_to("/")
    listed = refusals(landing)
    assert set(listed) == {"acme/etc", "root_link", "globex/employee_roster/roster.csv"}
    assert refusals(landing, "acme/etc/") == {"acme/etc": listed["acme/etc"]}
    assert refusals(landing, "root_link/etc/") == {"root_link": listed["root_link"]}


def test_a_folder_swapped_for_a_link_after_listing_is_not_read(landing, tmp_path):
    (blob,) = landing.list_blobs("globex/")
    folder = landing.root / "globex" / "employee_roster"
    folder.rename(tmp_path / "moved")
    (tmp_path / "moved").rename(tmp_path / "outside" / "employee_roster")
    (tmp_path / "outside" / "employee_roster" / "roster.csv").write_bytes(b"someone else's bytes\n")
    folder.symlink_to(tmp_path / "outside" / "employee_roster")
    with pytest.raises(StorageError, match="a folder on its path is not a folder"):
        landing.open_blob(blob.path)
    with pytest.raises(StorageError, match="a folder on its path is not a folder"):
        open_source(landing.source_uri(blob.path), landing_root=landing.root)
    # The run's open of a recorded source: the same refusal whatever the path says.
    with pytest.raises(StorageError):
        open_source(landing.source_uri("globex/employee_roster/../../outside/secret.csv"), landing_root=landing.root)


def test_a_file_swapped_for_a_link_after_listing_is_not_read(landing, tmp_path):
    (blob,) = landing.list_blobs("globex/")
    file = landing.root / blob.path
    file.unlink()
    file.symlink_to(tmp_path / "outside" / "secret.csv")
    with pytest.raises(StorageError, match="it is a symbolic link"):
        open_source(landing.source_uri(blob.path), landing_root=landing.root)


def test_fifos_and_hard_links_are_refused_without_blocking(landing, tmp_path):
    folder = landing.root / "acme" / "employee_roster"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.csv")
    os.link(landing.root / "globex" / "employee_roster" / "roster.csv", folder / "hardlinked.csv")
    listed = refusals(landing, "acme/")
    assert listed == {
        "acme/employee_roster/hardlinked.csv": "has 2 hard links, so its path does not say whose it is; "
        "copy or move the file in instead of linking it",
        "acme/employee_roster/pipe.csv": "is not a regular file (a FIFO, socket or device)",
    }
    with pytest.raises(StorageError, match="is not read: it is not a regular file"):
        landing.open_blob("acme/employee_roster/pipe.csv")  # would wait for a writer if opened plainly
    with pytest.raises(StorageError, match="is not read: it has 2 hard links"):
        landing.open_blob("acme/employee_roster/hardlinked.csv")
    # The globex original has two links now as well: neither name is trusted.
    assert refusals(landing, "globex/")["globex/employee_roster/roster.csv"].startswith("has 2 hard links")


def test_names_that_are_not_plain_paths_are_refused_and_shown_escaped(landing):
    folder = landing.root / "acme" / "employee_roster"
    folder.mkdir(parents=True)
    (folder / "back\\slash.csv").write_bytes(b"x")
    (folder / "new\nline.csv").write_bytes(b"x")
    os.mkdir(os.path.join(os.fsencode(landing.root / "acme"), b"bad\xff"))
    listed = refusals(landing, "acme/")
    assert listed == {
        "acme/bad\\xff": "is not valid UTF-8",
        "acme/employee_roster/back\\slash.csv": "holds a backslash",
        "acme/employee_roster/new\\x0aline.csv": "holds a control character",
    }
    with pytest.raises(StorageError, match="holds a backslash; it is not read"):
        landing.open_blob("acme/employee_roster/back\\slash.csv")


def test_folders_nested_past_the_limit_are_one_refused_entry(landing):
    from ingest_pipeline.core.storage import MAX_FOLDER_DEPTH

    deep = landing.root.joinpath(*[f"d{i}" for i in range(MAX_FOLDER_DEPTH + 20)])
    deep.mkdir(parents=True)
    (deep / "file.csv").write_bytes(b"x")
    (landing.root / "d0" / "misplaced.csv").write_bytes(b"x")
    listed = refusals(landing, "d0/")
    limit = "/".join(f"d{i}" for i in range(MAX_FOLDER_DEPTH + 1))
    assert listed == {"d0/misplaced.csv": None, limit: f"is a folder nested {MAX_FOLDER_DEPTH + 1} deep; "
                      "the landing layout is <company_id>/<form_type>/<file>"}  # fmt: skip


def test_writing_never_follows_a_linked_folder(landing, tmp_path):
    (landing.root / "evilco").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError, match="Cannot write"):
        landing.put_blob("evilco/employee_roster/x.csv", b"x")
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.csv"]


def test_the_landing_root_itself_may_be_a_link(tmp_path):
    (tmp_path / "mount").mkdir()
    (tmp_path / "landing").symlink_to(tmp_path / "mount")
    storage = LocalLandingStorage(tmp_path / "landing")
    storage.put_blob("acme/payroll/a.csv", b"a\n")
    assert refusals(storage) == {"acme/payroll/a.csv": None}
    with storage.open_blob("acme/payroll/a.csv") as stream:
        assert stream.read() == b"a\n"


def test_a_local_source_outside_the_landing_folder_is_opened_only_if_regular(tmp_path):
    file = tmp_path / "upload.csv"
    file.write_bytes(b"a\n")
    with open_source(str(file), landing_root=tmp_path / "landing") as stream:
        assert stream.read() == b"a\n"
    (tmp_path / "link.csv").symlink_to(file)
    with pytest.raises(StorageError, match="is a symbolic link"):
        open_source(str(tmp_path / "link.csv"))
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(StorageError, match="not a regular file"):
        open_source(str(tmp_path / "pipe"))


@pytest.mark.azurite
def test_azure_names_that_are_not_plain_paths_are_refused(azurite):
    from ingest_pipeline_tests.hostile_blobs import put_blob_named

    container = azurite.container_client()
    storage = AzureBlobLandingStorage(container, prefix="landing/")
    storage.put_blob("globex/employee_roster/real.csv", b"globex\n")
    names = {
        "landing/acme/../globex/employee_roster/a.csv": "it has a '.' or '..' segment",
        "landing/evilco/./employee_roster/b.csv": "it has a '.' or '..' segment",
        "landing/evilco//employee_roster/c.csv": "it has an empty segment ('//' or a trailing '/')",
        "landing//globex/employee_roster/d.csv": "it starts with '/'",
        # The service turns a backslash into '/': this one is stored as landing/evilco/../globex/...
        "landing\\evilco\\..\\globex\\employee_roster\\e.csv": "it has a '.' or '..' segment",
        "landing/evilco/employee_roster/new\nline.csv": "it holds a control character",
    }
    for name in names:
        put_blob_named(azurite, container, name, b"hostile\n", metadata={"company_id": "globex"})
    listed = {blob.path: blob.refused for blob in storage.list_blobs()}
    assert listed.pop("globex/employee_roster/real.csv") is None
    assert sorted(listed) == sorted([
        "acme/../globex/employee_roster/a.csv", "evilco/./employee_roster/b.csv", "evilco//employee_roster/c.csv",
        "/globex/employee_roster/d.csv", "evilco/../globex/employee_roster/e.csv", "evilco/employee_roster/new\\x0aline.csv",
    ])  # fmt: skip
    assert sorted(listed.values()) == sorted(f"has a name that is not a plain path: {why}" for why in names.values())
    for path in listed:
        with pytest.raises(StorageError, match="it is not read"):
            storage.open_blob(path)


def test_a_staged_blob_is_not_listed_until_committed_and_an_aborted_one_never(backend):
    _, storage, _ = backend
    staged = storage.stage_blob("acme/payroll/streamed.csv")
    staged.write(b"first piece,")
    staged.write(b"second piece\n")
    assert [b.path for b in storage.list_blobs()] == []
    staged.commit({"company_id": "acme", "form_type": "payroll"})
    (blob,) = storage.list_blobs()
    assert (blob.path, blob.size) == ("acme/payroll/streamed.csv", 25)
    with storage.open_blob(blob.path) as stream:
        assert stream.read() == b"first piece,second piece\n"
    gone = storage.stage_blob("acme/payroll/gone.csv")
    gone.write(b"half a file")
    gone.abort()
    gone.abort()
    assert [b.path for b in storage.list_blobs()] == ["acme/payroll/streamed.csv"]
    with pytest.raises(StorageError):
        storage.stage_blob("acme/../x.csv")
