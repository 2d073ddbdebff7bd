"""`spec-diff`: the rule changes between two versions of a filespec, one line each.

Compared on the loaded models, so writing a rule another way (flow or block YAML, quoting, a
default written out) is no change; only what judging a file would see is.
"""

from ingest_pipeline.core.filespec import FieldSpec, FileSpec

# Keys of a field compared one by one; `name` identifies the field and `enum` is compared by value.
FIELD_KEYS = [key for key in FieldSpec.model_fields if key not in ("name", "enum")]


def _show(value: object) -> str:
    if value is None:
        return "(none)"
    if hasattr(value, "value"):  # a StrEnum
        return str(value.value)
    return repr(value) if isinstance(value, str) else str(value)


def _listing(values: list[str]) -> str:
    return ", ".join(repr(v) for v in values)


def diff_specs(old: FileSpec, new: FileSpec) -> list[str]:
    """The changes from `old` to `new`, one human-readable line each; empty when they judge alike."""
    lines: list[str] = []
    if old.form_type != new.form_type:
        lines.append(f"form_type: {old.form_type!r} -> {new.form_type!r}")
    for key in ("title", "version"):
        if getattr(old, key) != getattr(new, key):
            lines.append(f"{key}: {_show(getattr(old, key))} -> {_show(getattr(new, key))}")
    for key in type(old.format).model_fields:
        before, after = getattr(old.format, key), getattr(new.format, key)
        if before != after:
            lines.append(f"format.{key}: {_show(before)} -> {_show(after)}")
    for key in type(old.quality).model_fields:
        before, after = getattr(old.quality, key), getattr(new.quality, key)
        if before != after:
            lines.append(f"quality.{key}: {_show(before)} -> {_show(after)}")

    old_fields = {f.name: f for f in old.fields}
    new_fields = {f.name: f for f in new.fields}
    for field in new.fields:
        if field.name not in old_fields:
            lines.append(f"field {field.name}: added ({field.type.value}{', required' if field.required else ''})")
    for field in old.fields:
        if field.name not in new_fields:
            lines.append(f"field {field.name}: removed")
    for field in old.fields:
        other = new_fields.get(field.name)
        if other is None:
            continue
        for key in FIELD_KEYS:
            before, after = getattr(field, key), getattr(other, key)
            if before != after:
                lines.append(f"field {field.name}: {key} {_show(before)} -> {_show(after)}")
        lines.extend(_enum_lines(field, other))
    kept_old = [name for name in old_fields if name in new_fields]
    kept_new = [name for name in new_fields if name in old_fields]
    if kept_old != kept_new:
        lines.append(f"fields: order {', '.join(kept_old)} -> {', '.join(kept_new)}")

    old_enrich = {e.lookup: e for e in old.enrich}
    new_enrich = {e.lookup: e for e in new.enrich}
    for lookup, enrich in new_enrich.items():
        if lookup not in old_enrich:
            lines.append(f"enrich {lookup}: added (on {_listing(list(enrich.on))}, adds {_listing(list(enrich.add))})")
    for lookup in old_enrich:
        if lookup not in new_enrich:
            lines.append(f"enrich {lookup}: removed")
    for lookup, enrich in old_enrich.items():
        other = new_enrich.get(lookup)
        if other is not None:
            for key in ("on", "add", "required"):
                if getattr(enrich, key) != getattr(other, key):
                    lines.append(
                        f"enrich {lookup}: {key} {_show(getattr(enrich, key))} -> {_show(getattr(other, key))}"
                    )
    return lines


def _enum_lines(old: FieldSpec, new: FieldSpec) -> list[str]:
    if old.enum == new.enum:
        return []
    if old.enum is None:
        return [f"field {new.name}: enum added ({_listing(new.enum)})"]
    if new.enum is None:
        return [f"field {new.name}: enum removed (any value allowed; was {_listing(old.enum)})"]
    lines = []
    added = [v for v in new.enum if v not in old.enum]
    removed = [v for v in old.enum if v not in new.enum]
    if added:
        lines.append(f"field {new.name}: enum values added {_listing(added)}")
    if removed:
        lines.append(f"field {new.name}: enum values removed {_listing(removed)}")
    if not added and not removed:
        lines.append(f"field {new.name}: enum order changed")
    return lines
