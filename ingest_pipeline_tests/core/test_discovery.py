"""The upload sensor's decisions: settling, same-second arrivals, a bounded cursor, reporting once."""

from datetime import UTC, datetime, timedelta

import pytest

from ingest_pipeline.core.discovery import (
    SETTLE_MIN_AGE,
    UNKNOWN,
    DiscoveryCursor,
    DiscoverySettings,
    classify_blob,
    plan_tick,
)
from ingest_pipeline.core.storage import BlobInfo

KNOWN = {"employee_roster", "payroll"}
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def fresh_settings(**values) -> DiscoverySettings:
    """Settings whose tick interval (a day) is longer than any blob's age in these tests, so every
    blob is first seen fresh and settles by the two-tick rule (the first-sight rule has its own tests)."""
    return DiscoverySettings(**{"interval_seconds": 86400, **values})


def blob(path: str, size: int = 10, at: datetime = T0, etag: str | None = None, **metadata: str) -> BlobInfo:
    return BlobInfo(path=path, size=size, etag=etag or f"{path}-{size}-{at.timestamp()}", last_modified=at,
                    metadata=metadata)  # fmt: skip


class Sensor:
    """Ticks the pure logic as the sensor does: every settled blob is handled at once."""

    def __init__(self, settings: DiscoverySettings | None = None) -> None:
        self.settings = settings or fresh_settings()
        self.cursor_json: str | None = None

    def tick(self, listing: list[BlobInfo], now: datetime = T0 + timedelta(minutes=1), handle: bool = True):
        plan = plan_tick(listing, DiscoveryCursor.from_json(self.cursor_json), self.settings, now, KNOWN)
        batch = plan.within_budget() if handle else []
        self.cursor_json = plan.next_cursor([item.blob for item in batch]).to_json()
        return plan, [item.blob.path for item in batch]


def test_a_new_blob_settles_on_the_second_tick_and_is_handled_once():
    sensor = Sensor()
    listing = [blob("acme/employee_roster/a.csv")]
    plan, handled = sensor.tick(listing)
    assert handled == [] and [u.blob.path for u in plan.unsettled] == ["acme/employee_roster/a.csv"]
    plan, handled = sensor.tick(listing)
    assert handled == ["acme/employee_roster/a.csv"]
    found = plan.settled[0]
    assert (found.company_id, found.form_type, found.problem) == ("acme", "employee_roster", None)
    for _ in range(3):
        plan, handled = sensor.tick(listing)
        assert handled == [] and plan.unsettled == [] and plan.settled == []


def test_a_growing_blob_waits_until_it_stops_changing():
    sensor = Sensor()
    path = "acme/employee_roster/big.csv"
    sensor.tick([blob(path, 100, T0)])
    plan, handled = sensor.tick([blob(path, 200, T0 + timedelta(seconds=15))])
    assert handled == [] and "grew from 100 to 200 bytes" in plan.unsettled[0].reason
    plan, handled = sensor.tick([blob(path, 300, T0 + timedelta(seconds=30))])
    assert handled == []
    final = blob(path, 300, T0 + timedelta(seconds=30))
    plan, handled = sensor.tick([final])
    assert handled == [path]


def test_a_replaced_blob_is_new_again():
    sensor = Sensor()
    first = blob("acme/payroll/p.csv", 10, T0)
    sensor.tick([first])
    assert sensor.tick([first])[1] == ["acme/payroll/p.csv"]
    second = blob("acme/payroll/p.csv", 12, T0 + timedelta(hours=1))
    assert sensor.tick([second], now=T0 + timedelta(hours=2))[1] == []
    assert sensor.tick([second], now=T0 + timedelta(hours=2))[1] == ["acme/payroll/p.csv"]


def test_a_blob_first_seen_unmodified_for_a_whole_tick_settles_at_once():
    sensor = Sensor(DiscoverySettings(interval_seconds=4))
    path = "acme/employee_roster/dropped.csv"
    # Dropped just after a tick: by the next one, 4 s later, it has been unchanged for a tick.
    plan, handled = sensor.tick([blob(path, at=T0)], now=T0 + timedelta(seconds=4.2))
    assert handled == [path] and plan.unsettled == []


def test_a_blob_first_seen_younger_than_a_tick_waits_for_the_next():
    sensor = Sensor(DiscoverySettings(interval_seconds=4))
    path = "acme/employee_roster/copying.csv"
    plan, handled = sensor.tick([blob(path, 100, at=T0)], now=T0 + timedelta(seconds=1))
    assert handled == [] and "settles when unchanged on the next tick" in plan.unsettled[0].reason
    plan, handled = sensor.tick([blob(path, 200, at=T0 + timedelta(seconds=4))], now=T0 + timedelta(seconds=5))
    assert handled == [] and "grew from 100 to 200 bytes" in plan.unsettled[0].reason
    plan, handled = sensor.tick([blob(path, 200, at=T0 + timedelta(seconds=4))], now=T0 + timedelta(seconds=9))
    assert handled == [path]


def test_min_age_rule_settles_by_age_without_an_extra_tick():
    sensor = Sensor(fresh_settings(settle_rule=SETTLE_MIN_AGE, min_age_seconds=60))
    fresh = blob("acme/payroll/p.csv", at=T0)
    plan, handled = sensor.tick([fresh], now=T0 + timedelta(seconds=20))
    assert handled == [] and "settles after 60s" in plan.unsettled[0].reason
    assert sensor.tick([fresh], now=T0 + timedelta(seconds=61))[1] == ["acme/payroll/p.csv"]
    old = blob("acme/payroll/old.csv", at=T0 - timedelta(days=1))
    assert Sensor(sensor.settings).tick([old], now=T0)[1] == ["acme/payroll/old.csv"]


def test_blobs_of_the_same_second_are_not_missed_when_they_appear_one_by_one():
    """Azure's last_modified has whole seconds: a second blob may land in the same second
    after the first was listed and the watermark reached that second."""
    sensor = Sensor()
    a = blob("acme/payroll/a.csv", at=T0)
    b = blob("acme/payroll/b.csv", at=T0)
    sensor.tick([a])
    assert sensor.tick([a])[1] == ["acme/payroll/a.csv"]
    assert DiscoveryCursor.from_json(sensor.cursor_json).watermark == T0.timestamp()
    assert sensor.tick([a, b])[1] == []
    assert sensor.tick([a, b])[1] == ["acme/payroll/b.csv"]
    assert sensor.tick([a, b])[1] == []


def test_a_blob_that_becomes_visible_late_within_the_lookback_is_found():
    sensor = Sensor(fresh_settings(lookback_seconds=300))
    newer = blob("acme/payroll/newer.csv", at=T0)
    late = blob("acme/payroll/late.csv", at=T0 - timedelta(seconds=120))  # committed earlier, listed later
    sensor.tick([newer])
    sensor.tick([newer])
    sensor.tick([newer, late])
    assert sensor.tick([newer, late])[1] == ["acme/payroll/late.csv"]


def test_the_cursor_stays_bounded_over_years_of_history():
    settings = fresh_settings(max_tracked_blobs=50, max_blobs_per_tick=50, lookback_seconds=300)
    sensor = Sensor(settings)
    history = [blob(f"acme/payroll/{day:05d}.csv", at=T0 + timedelta(days=day)) for day in range(1000)]
    now = T0 + timedelta(days=1001)
    seen: list[str] = []
    for _ in range(60):
        plan, handled = sensor.tick(history, now=now)
        seen += handled
        if not plan.settled and not plan.unsettled:
            break
        cursor = DiscoveryCursor.from_json(sensor.cursor_json)
        assert len(cursor.pending) <= 50 and len(cursor.handled) <= 51
    assert sorted(seen) == sorted(b.path for b in history) and len(seen) == len(set(seen))
    assert len(sensor.cursor_json) < 1000
    # A new upload after all that history is still found.
    new = blob("acme/payroll/new.csv", at=now)
    sensor.tick([*history, new], now=now)
    assert sensor.tick([*history, new], now=now)[1] == ["acme/payroll/new.csv"]


def test_the_per_tick_budget_postpones_but_never_skips():
    settings = fresh_settings(max_blobs_per_tick=2, max_hash_bytes_per_tick=1000)
    sensor = Sensor(settings)
    listing = [blob(f"acme/payroll/{i}.csv", size=400, at=T0 + timedelta(seconds=i)) for i in range(5)]
    sensor.tick(listing)
    batches = [sensor.tick(listing)[1] for _ in range(4)]
    assert batches == [["acme/payroll/0.csv", "acme/payroll/1.csv"], ["acme/payroll/2.csv", "acme/payroll/3.csv"],
                       ["acme/payroll/4.csv"], []]  # fmt: skip
    huge = blob("acme/payroll/huge.csv", size=10**10, at=T0 + timedelta(seconds=9))
    sensor.tick([*listing, huge])
    assert sensor.tick([*listing, huge])[1] == ["acme/payroll/huge.csv"]  # alone, whatever its size


def test_an_unhandled_settled_blob_is_tried_again():
    """A blob the sensor could not read (or left over the budget) stays pending and settled."""
    sensor = Sensor()
    listing = [blob("acme/payroll/a.csv")]
    sensor.tick(listing)
    plan, _ = sensor.tick(listing, handle=False)
    assert [item.blob.path for item in plan.settled] == ["acme/payroll/a.csv"]
    assert sensor.tick(listing)[1] == ["acme/payroll/a.csv"]


@pytest.mark.parametrize(
    ("path", "metadata", "company", "form_type", "problem"),
    [
        ("stray.csv", {}, UNKNOWN, UNKNOWN, "is not <company_id>/<form_type>/<file>"),
        ("acme/employee_roster/2024/jan.csv", {}, UNKNOWN, UNKNOWN, "is not <company_id>/<form_type>/<file>"),
        ("acme/timesheets/t.csv", {}, "acme", "timesheets", "unknown form type 'timesheets'"),
        # A company id that breaks the rule is named in the problem, never recorded as a company.
        ("ac me/payroll/p.csv", {}, UNKNOWN, "payroll", "company id 'ac me' must be"),
        (".x/payroll/p.csv", {}, UNKNOWN, "payroll", "company id '.x' must be"),
        ("-x/payroll/p.csv", {}, UNKNOWN, "payroll", "company id '-x' must be"),
        # Metadata overrides with traversal values are refused, not followed to another company.
        ("evilco/payroll/p.csv", {"company_id": ".."}, UNKNOWN, "payroll", "company id '..' must be"),
        ("evilco/payroll/p.csv", {"company_id": "."}, UNKNOWN, "payroll", "company id '.' must be"),
        ("evilco/payroll/p.csv", {"company_id": "../globex"}, UNKNOWN, "payroll", "company id '../globex' must be"),
        ("evilco/payroll/p.csv", {"company_id": "globex/x"}, UNKNOWN, "payroll", "company id 'globex/x' must be"),
        ("evilco/payroll/p.csv", {"company_id": "a" * 101}, UNKNOWN, "payroll", "must be 1 to 100 letters"),
        ("evilco/payroll/p.csv", {"form_type": "../payroll"}, "evilco", UNKNOWN, "unknown form type '../payroll'"),
        ("inbox/p.csv", {"company_id": "..", "form_type": "payroll"}, UNKNOWN, "payroll", "company id '..' must be"),
        # Names that are not plain paths never parse as the layout.
        ("acme/../globex/p.csv", {}, UNKNOWN, UNKNOWN, "is not <company_id>/<form_type>/<file>"),
        ("acme/./p.csv", {}, UNKNOWN, UNKNOWN, "is not <company_id>/<form_type>/<file>"),
        ("acme\\payroll\\p.csv", {}, UNKNOWN, UNKNOWN, "is not <company_id>/<form_type>/<file>"),
        ("inbox/p.csv", {"company_id": "globex", "form_type": "payroll"}, "globex", "payroll", None),
        ("acme/payroll/p.csv", {"Company_Id": "globex"}, "globex", "payroll", None),
        ("acme/payroll/p.csv", {"form_type": "employee_roster"}, "acme", "employee_roster", None),
        ("inbox/p.csv", {"company_id": "globex"}, "globex", UNKNOWN, "metadata does not name"),
    ],
)
def test_classify_by_path_with_metadata_overriding(path, metadata, company, form_type, problem):
    found = classify_blob(blob(path, **metadata), KNOWN)
    assert (found.company_id, found.form_type) == (company, form_type)
    if problem is None:
        assert found.problem is None and found.to_read
    else:
        assert problem in found.problem
        # Read (hashed) only when a backfill could ingest it later: a well-formed form type without a filespec.
        assert found.to_read == (problem.startswith("unknown form type") and form_type != UNKNOWN)


def refused(path: str, reason: str = "is a symbolic link", at: datetime = T0, **metadata: str) -> BlobInfo:
    return BlobInfo(path=path, size=7, etag=f"{path}-link", last_modified=at, metadata=metadata, refused=reason)


@pytest.mark.parametrize(
    ("entry", "company", "form_type"),
    [
        (refused("evilco/employee_roster/x.csv"), "evilco", "employee_roster"),
        (refused("evilco/employee_roster"), UNKNOWN, UNKNOWN),
        # Metadata of an entry the storage refused is not believed: it is attributed by its path alone.
        (refused("acme/../globex/employee_roster/x.csv", "has a name that is not a plain path",
                 company_id="globex", form_type="employee_roster"), UNKNOWN, UNKNOWN),  # fmt: skip
        (refused("/globex/employee_roster/x.csv", "has a name that is not a plain path"), UNKNOWN, UNKNOWN),
    ],
)
def test_an_entry_the_storage_refused_is_reported_by_its_own_path(entry, company, form_type):
    found = classify_blob(entry, KNOWN)
    assert (found.company_id, found.form_type, found.to_read) == (company, form_type, False)
    assert found.problem == f"{entry.path!r} {entry.refused}"


def test_refused_entries_take_none_of_the_hashing_budget():
    """Entries reported without being read do not push real uploads to a later tick."""
    settings = fresh_settings(max_blobs_per_tick=2, max_hash_bytes_per_tick=1000)
    sensor = Sensor(settings)
    links = [refused(f"evilco/payroll/link{i:02d}.csv", at=T0 - timedelta(seconds=60 - i)) for i in range(30)]
    uploads = [blob(f"acme/payroll/{i}.csv", size=400, at=T0 + timedelta(seconds=i)) for i in range(3)]
    sensor.tick([*links, *uploads])
    plan, handled = sensor.tick([*links, *uploads])
    assert handled == [link.path for link in links] + ["acme/payroll/0.csv", "acme/payroll/1.csv"]
    assert sensor.tick([*links, *uploads])[1] == ["acme/payroll/2.csv"]
    assert sensor.tick([*links, *uploads])[1] == []


def test_bad_blobs_are_reported_once():
    sensor = Sensor()
    listing = [blob("stray.csv"), blob("acme/timesheets/t.csv")]
    sensor.tick(listing)
    plan, handled = sensor.tick(listing)
    assert sorted(handled) == ["acme/timesheets/t.csv", "stray.csv"]
    assert all(item.problem for item in plan.settled)
    for _ in range(3):
        plan, handled = sensor.tick(listing)
        assert handled == [] and plan.settled == [] and plan.unsettled == []


def test_since_ignores_older_blobs_and_the_watermark_never_passes_now():
    sensor = Sensor(fresh_settings(since=datetime(2024, 3, 1)))
    old = blob("acme/payroll/old.csv", at=T0 - timedelta(days=2))
    future = blob("acme/payroll/future.csv", at=T0 + timedelta(days=365))  # a writer's clock far ahead
    plan, _ = sensor.tick([old, future], now=T0)
    assert [u.blob.path for u in plan.unsettled] == ["acme/payroll/future.csv"]
    assert DiscoveryCursor.from_json(sensor.cursor_json).watermark == T0.timestamp()
    normal = blob("acme/payroll/normal.csv", at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=2)
    assert sensor.tick([old, future, normal], now=later)[1] == ["acme/payroll/future.csv"]
    assert sensor.tick([old, future, normal], now=later)[1] == ["acme/payroll/normal.csv"]
    assert DiscoveryCursor.from_json(sensor.cursor_json).watermark == later.timestamp()


def test_cursor_round_trip_and_reset():
    cursor = DiscoveryCursor(watermark=1.5, handled={"a/b/c": ("e1", 1.25)}, pending={"a/b/d": (3, "e2")})
    assert DiscoveryCursor.from_json(cursor.to_json()) == cursor
    assert DiscoveryCursor.from_json(None) == DiscoveryCursor() == DiscoveryCursor.from_json("")
    assert DiscoveryCursor.from_json('{"v": 0}') == DiscoveryCursor()


def test_settings_from_env():
    settings = DiscoverySettings.from_env(
        {
            "INGEST_SENSOR_PREFIXES": "acme/, globex/",
            "INGEST_SENSOR_SETTLE": "min_age",
            "INGEST_SENSOR_MIN_AGE_SECONDS": "30",
            "INGEST_SENSOR_MAX_BLOBS_PER_TICK": "5",
            "INGEST_SENSOR_SINCE": "2024-01-01",
            "INGEST_SENSOR_INTERVAL_SECONDS": "15",
        }
    )
    assert settings.prefixes == ("acme/", "globex/")
    assert settings.interval_seconds == 15
    assert (settings.settle_rule, settings.min_age_seconds, settings.max_blobs_per_tick) == (SETTLE_MIN_AGE, 30, 5)
    assert settings.since == datetime(2024, 1, 1, tzinfo=UTC)
    assert DiscoverySettings.from_env({}) == DiscoverySettings()
    with pytest.raises(ValueError, match="INGEST_SENSOR_MAX_TRACKED"):
        DiscoverySettings.from_env({"INGEST_SENSOR_MAX_TRACKED": "lots"})
    with pytest.raises(ValueError, match="settle rule"):
        DiscoverySettings.from_env({"INGEST_SENSOR_SETTLE": "soon"})
