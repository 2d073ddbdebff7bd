"""What the upload sensor launches: the pure decision logic, apart from Dagster and from storage.

Each tick the sensor lists the landing storage (per configured prefix) and hands the listing and
its previous cursor to `plan_tick`. The plan says which blobs are new and *settled* (to ingest,
or to report once when they cannot be ingested), which are still being written (named, and
looked at again next tick), and how far the cursor may advance once the sensor has handled some.

The cursor (`DiscoveryCursor`) stays small however long the landing area's history is:

- `watermark`: a `last_modified` high-water mark. Every blob modified before
  `watermark - lookback_seconds` has been handled (or was left behind on purpose, see `since`),
  so listings older than that cost nothing but the listing itself.
- `handled`: path -> (etag, last_modified) of the blobs handled with `last_modified` at or after
  `watermark - lookback_seconds`. This is what keeps two blobs written in the same second (or
  a blob whose commit became visible a moment late) from being missed or handled twice.
- `pending`: path -> (size, etag) of the blobs seen but not handled yet: still being written,
  or settled but left for a later tick by the per-tick budget. At most `max_tracked_blobs`.

New candidates are taken oldest first, at most `max_tracked_blobs` a tick; the watermark never
passes the oldest candidate left untracked, so nothing is skipped, only postponed.
"""

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingest_pipeline.core.companies import company_id_problem, is_company_id
from ingest_pipeline.core.filespec import FORM_TYPE_RE
from ingest_pipeline.core.storage import BlobInfo, parse_landing_path

CURSOR_VERSION = 1
UNKNOWN = "unknown"  # the company id / form type recorded for a blob that does not say its own
SETTLE_UNCHANGED = "unchanged"  # settled once unchanged for a tick: same size and etag on the previous one
DEFAULT_SENSOR_INTERVAL_SECONDS = 4
SETTLE_MIN_AGE = "min_age"  # settled once last modified at least `min_age_seconds` ago
SETTLE_RULES = (SETTLE_UNCHANGED, SETTLE_MIN_AGE)
METADATA_COMPANY_ID = "company_id"
METADATA_FORM_TYPE = "form_type"


@dataclass(frozen=True)
class DiscoverySettings:
    """How the upload sensor finds and paces uploads; `from_env` documents the variables.

    Attributes:
        prefixes: Listed each tick, relative to the landing root; "" (the default) is all of it.
            A prefix is a plain string prefix: "acme/" lists one company, "acme" also "acme2/".
        settle_rule: SETTLE_UNCHANGED (the default) or SETTLE_MIN_AGE.
        interval_seconds: The sensor's tick interval. Under SETTLE_UNCHANGED a blob first seen
            already unmodified for this long has been unchanged for a tick, as one seen again
            unchanged has, and is settled at once.
        min_age_seconds: For SETTLE_MIN_AGE: how long a blob must be unmodified.
        lookback_seconds: How far below the watermark new blobs are still looked for (clock
            skew between writers, commits that become visible late).
        max_tracked_blobs: The most new blobs looked at in one tick (and kept in the cursor).
        max_blobs_per_tick: The most settled blobs hashed (and launched or reported) per tick.
        max_hash_bytes_per_tick: Bytes hashed per tick; a larger blob is hashed alone in a tick.
        max_hash_seconds_per_tick: How long a tick waits for hashing; a blob whose hash takes
            longer goes on being hashed in the background and is picked up by a later tick, so
            a tick stays well within Dagster's sensor timeout (60 s by default) for any size.
        since: Blobs last modified before this are ignored (None: the whole history).
    """

    prefixes: tuple[str, ...] = ("",)
    settle_rule: str = SETTLE_UNCHANGED
    interval_seconds: float = DEFAULT_SENSOR_INTERVAL_SECONDS
    min_age_seconds: float = 60.0
    lookback_seconds: float = 300.0
    max_tracked_blobs: int = 1000
    max_blobs_per_tick: int = 25
    max_hash_bytes_per_tick: int = 1024**3
    max_hash_seconds_per_tick: float = 30.0
    since: datetime | None = None

    def __post_init__(self) -> None:
        if self.settle_rule not in SETTLE_RULES:
            raise ValueError(f"settle rule {self.settle_rule!r} must be one of {', '.join(SETTLE_RULES)}")
        for name in ("interval_seconds", "min_age_seconds", "lookback_seconds", "max_hash_seconds_per_tick"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more")
        for name in ("max_tracked_blobs", "max_blobs_per_tick", "max_hash_bytes_per_tick"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be 1 or more")
        if not self.prefixes:
            raise ValueError("prefixes must name at least one prefix ('' for the whole landing root)")
        if self.since is not None and self.since.tzinfo is None:
            object.__setattr__(self, "since", self.since.replace(tzinfo=UTC))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "DiscoverySettings":
        """Settings from environment variables; unset ones keep their defaults.

        - `INGEST_SENSOR_PREFIXES`: comma-separated prefixes (default: the whole landing root).
        - `INGEST_SENSOR_SETTLE`: `unchanged` (default) or `min_age`.
        - `INGEST_SENSOR_INTERVAL_SECONDS` (default 4): the sensor's tick interval.
        - `INGEST_SENSOR_MIN_AGE_SECONDS` (default 60), `INGEST_SENSOR_LOOKBACK_SECONDS` (300).
        - `INGEST_SENSOR_MAX_TRACKED` (1000), `INGEST_SENSOR_MAX_BLOBS_PER_TICK` (25),
          `INGEST_SENSOR_MAX_HASH_BYTES_PER_TICK` (1 GiB), `INGEST_SENSOR_MAX_HASH_SECONDS_PER_TICK` (30).
        - `INGEST_SENSOR_SINCE`: an ISO date or time; older blobs are ignored.
        """
        values: dict = {}
        if "INGEST_SENSOR_PREFIXES" in environ:
            prefixes = [p.strip().lstrip("/") for p in environ["INGEST_SENSOR_PREFIXES"].split(",")]
            values["prefixes"] = tuple(p for p in prefixes if p) or ("",)
        if environ.get("INGEST_SENSOR_SETTLE"):
            values["settle_rule"] = environ["INGEST_SENSOR_SETTLE"].strip().lower()
        numbers = {
            "INGEST_SENSOR_INTERVAL_SECONDS": ("interval_seconds", float),
            "INGEST_SENSOR_MIN_AGE_SECONDS": ("min_age_seconds", float),
            "INGEST_SENSOR_LOOKBACK_SECONDS": ("lookback_seconds", float),
            "INGEST_SENSOR_MAX_TRACKED": ("max_tracked_blobs", int),
            "INGEST_SENSOR_MAX_BLOBS_PER_TICK": ("max_blobs_per_tick", int),
            "INGEST_SENSOR_MAX_HASH_BYTES_PER_TICK": ("max_hash_bytes_per_tick", int),
            "INGEST_SENSOR_MAX_HASH_SECONDS_PER_TICK": ("max_hash_seconds_per_tick", float),
        }
        for variable, (name, kind) in numbers.items():
            if environ.get(variable):
                try:
                    values[name] = kind(environ[variable])
                except ValueError:
                    raise ValueError(f"{variable} is {environ[variable]!r}, not a number") from None
        if environ.get("INGEST_SENSOR_SINCE"):
            try:
                values["since"] = datetime.fromisoformat(environ["INGEST_SENSOR_SINCE"])
            except ValueError:
                raise ValueError(
                    f"INGEST_SENSOR_SINCE is {environ['INGEST_SENSOR_SINCE']!r}, not an ISO date"
                ) from None
        return cls(**values)


@dataclass
class DiscoveryCursor:
    """The sensor's memory between ticks (see the module docstring); serialised as JSON."""

    watermark: float | None = None  # POSIX seconds
    handled: dict[str, tuple[str, float]] = field(default_factory=dict)  # path -> (etag, last_modified)
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (size, etag)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "watermark": self.watermark,
                "handled": {path: list(entry) for path, entry in sorted(self.handled.items())},
                "pending": {path: list(entry) for path, entry in sorted(self.pending.items())},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> "DiscoveryCursor":
        """The cursor `to_json` wrote; None or "" (a new or reset sensor) is the empty cursor.

        A cursor of another version starts over: every blob is looked at again, and the sensor's
        check against `ingest.uploads` keeps already registered uploads from running twice.
        """
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") != CURSOR_VERSION:
            return cls()
        return cls(
            watermark=data["watermark"],
            handled={path: (etag, float(modified)) for path, (etag, modified) in data["handled"].items()},
            pending={path: (int(size), etag) for path, (size, etag) in data["pending"].items()},
        )


@dataclass(frozen=True)
class DiscoveredBlob:
    """A settled, new blob, with the company and form type it is for.

    Attributes:
        company_id: Valid by the company id rule, or UNKNOWN.
        form_type: A form type name (`[a-z][a-z0-9_]*`, perhaps without a filespec), or UNKNOWN.
        problem: Why it cannot be ingested (one sentence), or None when it can. Blobs with a
            problem are reported once and recorded as failed; the sensor adds problems of its own
            (an unreadable filespec).
        to_read: Whether the sensor reads (hashes) the blob. False when its name or metadata rule
            it out for good (refused by the storage, outside the layout, a company id or form type
            that is not one): it is then reported unread and takes none of the hashing budget. A
            blob of a well-formed but unknown form type is read, so that once its filespec exists a
            backfill can ingest it.
    """

    blob: BlobInfo
    company_id: str
    form_type: str
    problem: str | None = None
    to_read: bool = True


@dataclass(frozen=True)
class UnsettledBlob:
    """A new blob that may still be being written, and why the sensor thinks so."""

    blob: BlobInfo
    reason: str


def classify_blob(blob: BlobInfo, known_form_types: Collection[str]) -> DiscoveredBlob:
    """The company and form type a blob is for: its path `<company_id>/<form_type>/<file>`,
    overridden by its metadata `company_id` / `form_type` (Azure; either key alone works).

    A blob whose metadata names both may lie anywhere. When the company or form type cannot
    be told, `UNKNOWN` stands in for it and `problem` says why; a company id that breaks the
    company id rule, or a form type that is not a form type name, is never recorded as one.
    An entry the storage refused is attributed by its path alone, never by its metadata.
    """
    parsed = parse_landing_path(blob.path)
    path_company, path_form_type = (parsed[0], parsed[1]) if parsed else (None, None)
    if blob.refused is not None:
        company_id = path_company if path_company and is_company_id(path_company) else UNKNOWN
        form_type = path_form_type if path_form_type and FORM_TYPE_RE.fullmatch(path_form_type) else UNKNOWN
        return DiscoveredBlob(blob, company_id, form_type, f"{blob.path!r} {blob.refused}", to_read=False)
    metadata = {key.lower(): value.strip() for key, value in blob.metadata.items()}
    company_id = metadata.get(METADATA_COMPANY_ID) or path_company
    form_type = metadata.get(METADATA_FORM_TYPE) or path_form_type
    form_type_named = form_type if form_type and FORM_TYPE_RE.fullmatch(form_type) else UNKNOWN
    if company_id is None or form_type is None:
        return DiscoveredBlob(
            blob,
            company_id if company_id and is_company_id(company_id) else UNKNOWN,
            form_type_named,
            f"the path {blob.path!r} is not <company_id>/<form_type>/<file>, and the blob's metadata "
            "does not name its company_id and form_type",
            to_read=False,
        )
    company_problem = company_id_problem(company_id)
    if company_problem is not None:
        return DiscoveredBlob(blob, UNKNOWN, form_type_named, company_problem, to_read=False)
    if form_type_named == UNKNOWN or form_type not in known_form_types:
        known = ", ".join(sorted(known_form_types)) or "none"
        return DiscoveredBlob(
            blob,
            company_id,
            form_type_named,
            f"unknown form type {form_type!r} (known form types: {known})",
            to_read=form_type_named != UNKNOWN,
        )
    return DiscoveredBlob(blob, company_id, form_type)


@dataclass(frozen=True)
class TickPlan:
    """What one tick should do; `next_cursor` says where the sensor stands after doing some of it.

    Attributes:
        settled: New, settled blobs, oldest first: each to ingest, or to report (`problem`).
        unsettled: New blobs that may still be being written; looked at again next tick.
        untracked: New blobs beyond `max_tracked_blobs`, left entirely for later ticks.
    """

    settled: list[DiscoveredBlob]
    unsettled: list[UnsettledBlob]
    untracked: int
    previous: DiscoveryCursor
    settings: DiscoverySettings
    tracked: list[BlobInfo]
    next_watermark: float | None

    def within_budget(self) -> list[DiscoveredBlob]:
        """The settled blobs to handle this tick, oldest first.

        Blobs to hash: at most `max_blobs_per_tick` and `max_hash_bytes_per_tick` bytes, but
        always the first one, however large. Blobs reported unread (`to_read` False) take none
        of that budget: all of them are handled at once.
        """
        chosen: list[DiscoveredBlob] = []
        hashed, total, full = 0, 0, False
        for item in self.settled:
            if not item.to_read:
                chosen.append(item)
                continue
            full = full or hashed >= self.settings.max_blobs_per_tick or (
                hashed > 0 and total + item.blob.size > self.settings.max_hash_bytes_per_tick
            )
            if full:
                continue  # and every later blob to hash: oldest first, none overtakes
            chosen.append(item)
            hashed += 1
            total += item.blob.size
        return chosen

    def next_cursor(self, handled: Iterable[BlobInfo]) -> DiscoveryCursor:
        """The cursor after the sensor handled (launched, deduplicated or reported) `handled`.

        Tracked blobs not handled (still being written, over the budget, unreadable this tick)
        stay pending with the size and etag seen now; pending blobs no longer listed are dropped.
        """
        done = {(blob.path, blob.etag): blob for blob in handled}
        floor = None if self.next_watermark is None else self.next_watermark - self.settings.lookback_seconds
        entries = dict(self.previous.handled)
        for blob in done.values():
            entries[blob.path] = (blob.etag, blob.last_modified.timestamp())
        kept = {path: entry for path, entry in entries.items() if floor is None or entry[1] >= floor}
        pending = {b.path: (b.size, b.etag) for b in self.tracked if (b.path, b.etag) not in done}
        return DiscoveryCursor(watermark=self.next_watermark, handled=kept, pending=pending)


def plan_tick(
    listing: Iterable[BlobInfo],
    previous: DiscoveryCursor,
    settings: DiscoverySettings,
    now: datetime,
    known_form_types: Collection[str],
) -> TickPlan:
    """Decide what a tick does with the listing of all configured prefixes.

    Args:
        listing: The blobs listed this tick (each path once).
        previous: The cursor the previous tick left (`DiscoveryCursor.from_json`).
        settings: The settle rule, lookback and limits.
        now: The current time, timezone-aware.
        known_form_types: The form types that have a filespec.
    """
    blobs = list(listing)
    watermark = previous.watermark
    floor = None if watermark is None else watermark - settings.lookback_seconds
    since = settings.since.timestamp() if settings.since is not None else None

    def is_new(blob: BlobInfo) -> bool:
        handled = previous.handled.get(blob.path)
        if handled is not None and handled[0] == blob.etag:
            return False
        modified = blob.last_modified.timestamp()
        if since is not None and modified < since:
            return False
        return blob.path in previous.pending or floor is None or modified >= floor

    candidates = sorted((b for b in blobs if is_new(b)), key=lambda b: (b.last_modified, b.path))
    tracked, untracked = candidates[: settings.max_tracked_blobs], candidates[settings.max_tracked_blobs :]

    settled: list[DiscoveredBlob] = []
    unsettled: list[UnsettledBlob] = []
    for blob in tracked:
        reason = _unsettled_reason(blob, previous, settings, now)
        if reason is None:
            settled.append(classify_blob(blob, known_form_types))
        else:
            unsettled.append(UnsettledBlob(blob, reason))

    # The watermark may pass every listed blob but the untracked ones (tracked ones are kept
    # in `pending` until handled); never into the future, never backwards.
    if untracked:
        target = untracked[0].last_modified.timestamp()
    elif blobs:
        target = max(b.last_modified for b in blobs).timestamp()
    else:
        target = watermark
    if target is not None:
        target = min(target, now.timestamp())
    next_watermark = target if watermark is None else max(watermark, target if target is not None else watermark)
    return TickPlan(
        settled=settled,
        unsettled=unsettled,
        untracked=len(untracked),
        previous=previous,
        settings=settings,
        tracked=tracked,
        next_watermark=next_watermark,
    )


def _unsettled_reason(
    blob: BlobInfo, previous: DiscoveryCursor, settings: DiscoverySettings, now: datetime
) -> str | None:
    """Why a blob may still be being written, or None when it is settled."""
    if settings.settle_rule == SETTLE_MIN_AGE:
        age = (now - blob.last_modified).total_seconds()
        if age >= settings.min_age_seconds:
            return None
        return f"modified {max(age, 0):.0f}s ago; settles after {settings.min_age_seconds:.0f}s"
    seen = previous.pending.get(blob.path)
    if seen is None:
        # Unmodified for a whole tick already (a file dropped just after the previous tick): as much
        # evidence as seeing it unchanged on the next tick, which would cost a tick of waiting.
        if (now - blob.last_modified).total_seconds() >= settings.interval_seconds:
            return None
        return "new or replaced; settles when unchanged on the next tick"
    if seen == (blob.size, blob.etag):
        return None
    if seen[0] != blob.size:
        return f"grew from {seen[0]} to {blob.size} bytes since the last tick"
    return "changed since the last tick"
