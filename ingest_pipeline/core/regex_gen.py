"""Strings that a filespec `pattern` matches: random samples of a chosen length, and fixed shapes.

The test data generator needs values that match a field's pattern as a whole, within the field's
length rules. Patterns are read with Python's own parser (`re._parser`) into a small tree of
character choices, sequences, alternatives and repeats; unbounded repeats (`*`, `+`, `{m,}`) are
capped. Every character drawn passes the caller's `allowed` test (e.g. encodable in the file's
encoding), and wildcards (`.`, negated classes, `\\D \\S \\W`) draw from plain ASCII, so a value
means the same to Python `re` and to RE2. Anchors are read as matching nothing; callers check
what they generate with `re.fullmatch`, which catches the rare pattern that leans on `\\b`.

Lengths are tracked as bit masks (bit n set: some string of length n exists), which lets a sample
of an exact length be drawn without retries, and a *shape* (one character set per position) be
chosen for values that must be unique: the k-th string of a shape is k in mixed radix.
"""

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from re import _constants as sre
from re import _parser as sre_parser

UNBOUNDED_REPEAT_SPAN = 8  # `x*` is read as `x{0,8}`, `x{2,}` as `x{2,10}`
MAX_LENGTH = 1024  # lengths beyond this are not considered

# What wildcards draw from, first choice then fallback: characters every engine reads alike.
PLAIN_CHARS = string.ascii_letters + string.digits + "._-"
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x20, 0x7F))
WHITESPACE = " \t\n\r\f\v"
WORD_CHARS = string.ascii_letters + string.digits + "_"
# Characters of a class range beyond this many are not enumerated (wide Unicode ranges).
MAX_RANGE_CHARS = 4096

_LENGTH_MASK = (1 << (MAX_LENGTH + 1)) - 1


@dataclass(frozen=True)
class Chars:
    """One character out of `chars` (empty: nothing can be produced)."""

    chars: str


@dataclass(frozen=True)
class Sequence:
    items: tuple


@dataclass(frozen=True)
class Alternatives:
    options: tuple


@dataclass(frozen=True)
class Repeat:
    item: object
    low: int
    high: int


Node = Chars | Sequence | Alternatives | Repeat


class UnsupportedPatternError(ValueError):
    """The pattern uses a construct the generator cannot produce strings for."""


class RegexGenerator:
    """Produces strings that fully match one pattern, from characters that pass `allowed`."""

    def __init__(self, pattern: str, allowed: Callable[[str], bool]):
        self.pattern = pattern
        self._allowed = allowed
        parsed = sre_parser.parse(pattern)
        self.root = self._build(list(parsed), bool(parsed.state.flags & sre.SRE_FLAG_IGNORECASE))
        self._length_masks: dict[Node, int] = {}
        self._repeat_sums: dict[Repeat, list[int]] = {}
        self._suffix_masks: dict[Sequence, list[int]] = {}

    # --- reading the pattern -------------------------------------------------------------------

    def _build(self, items: list, ignorecase: bool) -> Node:
        nodes = [self._build_item(op, av, ignorecase) for op, av in items]
        return nodes[0] if len(nodes) == 1 else Sequence(tuple(nodes))

    def _build_item(self, op, av, ignorecase: bool) -> Node:
        if op is sre.LITERAL:
            return self._chars(chr(av))
        if op is sre.NOT_LITERAL:
            excluded = {chr(av), chr(av).swapcase()} if ignorecase else {chr(av)}
            return self._wildcard(excluded)
        if op is sre.ANY:
            return self._wildcard(set("\n"))
        if op is sre.IN:
            return self._class(av, ignorecase)
        if op is sre.BRANCH:
            return Alternatives(tuple(self._build(list(branch), ignorecase) for branch in av[1]))
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, subpattern = av
            if add_flags & sre.SRE_FLAG_IGNORECASE:
                ignorecase = True
            if del_flags & sre.SRE_FLAG_IGNORECASE:
                ignorecase = False
            return self._build(list(subpattern), ignorecase)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, subpattern = av
            if high == sre.MAXREPEAT:
                high = low + UNBOUNDED_REPEAT_SPAN
            return Repeat(self._build(list(subpattern), ignorecase), low, min(high, MAX_LENGTH))
        if op is sre.AT:
            return Sequence(())
        raise UnsupportedPatternError(f"pattern {self.pattern!r} uses {op}, for which no strings can be generated")

    def _chars(self, candidates) -> Chars:
        return Chars("".join(sorted({char for char in candidates if self._allowed(char)})))

    def _wildcard(self, excluded: set[str]) -> Chars:
        """Any character but `excluded`: plain characters if one is left, else any printable ASCII."""
        plain = self._chars(set(PLAIN_CHARS) - excluded)
        return plain if plain.chars else self._chars(set(PRINTABLE_ASCII) - excluded)

    def _class(self, items: list, ignorecase: bool) -> Chars:
        negate = False
        members: set[str] = set()
        for op, av in items:
            if op is sre.NEGATE:
                negate = True
            elif op is sre.LITERAL:
                members.add(chr(av))
            elif op is sre.RANGE:
                low, high = av
                members.update(chr(code) for code in range(low, min(high, low + MAX_RANGE_CHARS) + 1))
            elif op is sre.CATEGORY:
                members.update(_category_chars(av))
            else:
                raise UnsupportedPatternError(
                    f"pattern {self.pattern!r} has a character class item {op} that is not supported"
                )
        if ignorecase:
            members |= {char.swapcase() for char in members if len(char.swapcase()) == 1}
        if negate:
            return self._wildcard(members)
        return self._chars(members)

    # --- lengths -------------------------------------------------------------------------------

    def _lengths(self, node: Node) -> int:
        """Bit mask of the lengths of the strings `node` produces."""
        mask = self._length_masks.get(node)
        if mask is None:
            if isinstance(node, Chars):
                mask = 0b10 if node.chars else 0
            elif isinstance(node, Sequence):
                mask = self._suffixes(node)[0]
            elif isinstance(node, Alternatives):
                mask = 0
                for option in node.options:
                    mask |= self._lengths(option)
            else:
                mask = 0
                for sums in self._sums(node)[node.low :]:
                    mask |= sums
            self._length_masks[node] = mask
        return mask

    def _suffixes(self, node: Sequence) -> list[int]:
        """Length masks of items[i:] for every i (the last one: the empty suffix)."""
        suffixes = self._suffix_masks.get(node)
        if suffixes is None:
            suffixes = [1]
            for item in reversed(node.items):
                suffixes.append(_add_lengths(self._lengths(item), suffixes[-1]))
            suffixes.reverse()
            self._suffix_masks[node] = suffixes
        return suffixes

    def _sums(self, node: Repeat) -> list[int]:
        """Length masks of exactly c copies of the item, for c in 0..high."""
        sums = self._repeat_sums.get(node)
        if sums is None:
            item = self._lengths(node.item)
            sums = [1]
            for _ in range(node.high):
                sums.append(_add_lengths(sums[-1], item))
            self._repeat_sums[node] = sums
        return sums

    def lengths(self, low: int, high: int) -> list[int]:
        """The lengths within [low, high] that some matching string has, ascending."""
        mask = self._lengths(self.root)
        return [length for length in range(low, min(high, MAX_LENGTH) + 1) if mask >> length & 1]

    # --- random samples ------------------------------------------------------------------------

    def sample(self, rng: random.Random, length: int) -> str:
        """A random matching string of exactly `length` characters (one of `lengths(...)`)."""
        out: list[str] = []
        self._sample(self.root, length, rng, out)
        return "".join(out)

    def _sample(self, node: Node, length: int, rng: random.Random, out: list[str]) -> None:
        if isinstance(node, Chars):
            out.append(rng.choice(node.chars))
        elif isinstance(node, Alternatives):
            options = [option for option in node.options if self._lengths(option) >> length & 1]
            self._sample(rng.choice(options), length, rng, out)
        elif isinstance(node, Sequence):
            suffixes = self._suffixes(node)
            for index, item in enumerate(node.items):
                part = self._split(self._lengths(item), suffixes[index + 1], length, rng)
                self._sample(item, part, rng, out)
                length -= part
        else:
            sums = self._sums(node)
            counts = [count for count in range(node.low, node.high + 1) if sums[count] >> length & 1]
            count = rng.choice(counts)
            item_lengths = self._lengths(node.item)
            for done in range(count):
                part = self._split(item_lengths, sums[count - done - 1], length, rng)
                self._sample(node.item, part, rng, out)
                length -= part

    @staticmethod
    def _split(head: int, rest: int, length: int, rng: random.Random) -> int:
        """A length for the head such that the rest can make up the remainder of `length`."""
        options = [part for part in range(length + 1) if head >> part & 1 and rest >> (length - part) & 1]
        return rng.choice(options)

    # --- shapes for unique values --------------------------------------------------------------

    def unique_shape(self, low: int, high: int, needed: int, trimmed: bool = True) -> tuple[str, ...] | None:
        """The shortest shape (one character set per position, length in [low, high]) holding
        at least `needed` distinct strings, or None. When `trimmed`, its first and last positions
        hold no space, so the strings survive trimming."""
        high = min(high, low + 32, MAX_LENGTH)
        best = self._best_shapes(self.root, high, {})
        for length in range(low, high + 1):
            if length not in best:
                continue
            shape = list(best[length][1])
            if shape and trimmed:
                shape[0] = shape[0].replace(" ", "")
                shape[-1] = shape[-1].replace(" ", "")
            count = 1
            for chars in shape:
                count *= len(chars)
            if count >= needed:
                return tuple(shape)
        return None

    def _best_shapes(self, node: Node, limit: int, memo: dict) -> dict[int, tuple[int, tuple[str, ...]]]:
        """For each length up to `limit`: the shape of that length with the most strings."""
        if node in memo:
            return memo[node]
        if isinstance(node, Chars):
            best = {1: (len(node.chars), (node.chars,))} if node.chars and limit >= 1 else {}
        elif isinstance(node, Sequence):
            best = {0: (1, ())}
            for item in node.items:
                best = _concat_shapes(best, self._best_shapes(item, limit, memo), limit)
        elif isinstance(node, Alternatives):
            best = {}
            for option in node.options:
                _keep_larger(best, self._best_shapes(option, limit, memo))
        else:
            item = self._best_shapes(node.item, limit, memo)
            copies = {0: (1, ())}
            best = dict(copies) if node.low == 0 else {}
            for count in range(1, node.high + 1):
                copies = _concat_shapes(copies, item, limit)
                if not copies or count > limit + 1:
                    break
                if count >= node.low:
                    _keep_larger(best, copies)
        memo[node] = best
        return best


def _category_chars(category) -> str:
    if category is sre.CATEGORY_DIGIT:
        return string.digits
    if category is sre.CATEGORY_NOT_DIGIT:
        return "".join(set(PRINTABLE_ASCII) - set(string.digits))
    if category is sre.CATEGORY_SPACE:
        return WHITESPACE
    if category is sre.CATEGORY_NOT_SPACE:
        return "".join(set(PRINTABLE_ASCII) - set(WHITESPACE))
    if category is sre.CATEGORY_WORD:
        return WORD_CHARS
    if category is sre.CATEGORY_NOT_WORD:
        return "".join(set(PRINTABLE_ASCII) - set(WORD_CHARS))
    raise UnsupportedPatternError(f"character category {category} is not supported")


def _add_lengths(first: int, second: int) -> int:
    """Length mask of a string of `first` followed by one of `second`."""
    total = 0
    while first:
        lowest = first & -first
        total |= second << (lowest.bit_length() - 1)
        first ^= lowest
    return total & _LENGTH_MASK


def _concat_shapes(first: dict, second: dict, limit: int) -> dict:
    out: dict[int, tuple[int, tuple[str, ...]]] = {}
    for first_length, (first_count, first_shape) in first.items():
        for second_length, (second_count, second_shape) in second.items():
            length = first_length + second_length
            count = first_count * second_count
            if length <= limit and (length not in out or count > out[length][0]):
                out[length] = (count, first_shape + second_shape)
    return out


def _keep_larger(best: dict, candidates: dict) -> None:
    for length, (count, shape) in candidates.items():
        if length not in best or count > best[length][0]:
            best[length] = (count, shape)


# --- one readable example ----------------------------------------------------------------------

EXAMPLE_TARGET_LENGTH = 8  # an example this long reads naturally; the pattern may allow only others
EXAMPLE_TRIES = 5


def example_value(pattern: str, min_length: int | None = None, max_length: int | None = None) -> str | None:
    """One value the whole of `pattern` matches, for telling a person what is expected ("like
    AB-12345"), or None when no such value can be made (within the length bounds).

    The same pattern always gives the same example. Wildcards and classes draw letters and digits,
    plus the characters the pattern itself spells out (its `-`, `.` or `+`), so the example reads
    as a plausible value rather than as punctuation; failing that, any printable ASCII.
    """
    import re

    def readable(char: str) -> bool:
        spelled_out = char in pattern and (char == " " or not char.isspace())
        return char.isascii() and (char.isalnum() or spelled_out)

    def printable(char: str) -> bool:
        return char in PRINTABLE_ASCII

    low, high = max(1, min_length or 0), min(max_length if max_length is not None else MAX_LENGTH, MAX_LENGTH)
    for allowed in (readable, printable):
        try:
            generator = RegexGenerator(pattern, allowed)
        except (UnsupportedPatternError, re.error):
            return None
        lengths = generator.lengths(low, high)
        if not lengths:
            continue
        length = min(lengths, key=lambda n: (abs(n - EXAMPLE_TARGET_LENGTH), n))
        for attempt in range(EXAMPLE_TRIES):
            value = generator.sample(random.Random(f"{pattern}\n{attempt}"), length)
            if value == value.strip() and re.fullmatch(pattern, value):
                return value
    return None
