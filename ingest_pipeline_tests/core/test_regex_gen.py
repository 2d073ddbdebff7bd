"""`example_value`: one readable value a pattern matches, to tell a client what is expected."""

import re

import pytest

from ingest_pipeline.core.regex_gen import example_value


@pytest.mark.parametrize(
    "pattern",
    ["E[0-9]{8}", r"[^@\s]+@[^@\s]+\.[a-z]+", r"\+1-[0-9]{3}-[0-9]{4}", "[A-Z]{2}-[0-9]{5}", "(?i)ab|cd", ".*", r"\d{3}\s\d{2}"],
)
def test_the_example_matches_the_whole_pattern_and_is_always_the_same(pattern):
    example = example_value(pattern)
    assert example is not None and re.fullmatch(pattern, example), example
    assert example == example.strip() and example == example_value(pattern)


def test_the_example_reads_as_a_value_not_as_punctuation():
    """Wildcards draw letters and digits (and what the pattern spells out), not `_` or `-`."""
    example = example_value(r"[^@\s]+@[^@\s]+\.[a-z]+")
    assert re.fullmatch(r"[A-Za-z0-9]+@[A-Za-z0-9.]+\.[a-z]+", example), example


def test_the_example_keeps_to_the_fields_lengths():
    assert len(example_value("[A-Z]{2,20}", min_length=12)) >= 12
    assert len(example_value("[A-Z]{2,20}", max_length=3)) <= 3
    assert example_value("[A-Z]{2}", min_length=5) is None  # nothing matches and is that long
