"""The classifier's lexicon, compiled from the profile's `[classifier]` data.

Every list of words lives in the profile so editors can extend it; this module only turns it
into a word index (for literal terms) and regular expressions (for relation patterns), once.
"""

from __future__ import annotations

import re
import re._constants as re_constants
import re._parser as re_parser
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Hashable, Iterable, NamedTuple

import ahocorasick_rs

from tracker.errors import ProfileError
from tracker.profile import Profile

RELEVANCE_LEVELS = ("core", "adjacent", "off_topic")
THERAPY_KEYS = ("bispecific_antibody", "antibody_drug_conjugate", "cell_therapy",
                "checkpoint_inhibitor", "immunomodulatory_targeted", "chemotherapy",
                "stem_cell_transplant", "radiotherapy")
STUDY_TYPES = ("clinical_trial", "real_world", "review", "case_report", "preclinical", "other")


TOKEN = re.compile(r"[^\W_]+")
# A CAR-T mention is masked as one start marker then filler, same length as the mention: a
# pattern beginning with {CAR} is tried once per mention, not at every character of it.
CAR_SENTINEL = "\x01"
CAR_FILLER = "\x02"


def _is_abbreviation(core: str) -> bool:
    return any(char.isupper() for char in core) and len(core) <= 5


def term_body(term: str) -> str:
    """A literal term as a regex: spaces and hyphens match either; a trailing * any ending.

    Short terms with capitals (ALL, CAR, RT, ICE, BiTE) match case-sensitively, so that "all"
    or "ice" in running text is never a disease or a regimen.
    """
    wildcard = term.endswith("*")
    core = term.rstrip("*")
    pieces = [re.escape(piece) for piece in re.split(r"[ -]", core)]
    body = r"[\s-]".join(pieces) + (r"[\w-]*" if wildcard else r"(?!\w)")
    return f"(?-i:{body})" if _is_abbreviation(core) else body


def term_pattern(term: str) -> str:
    """The whole-word regex of one term (what a naive matcher would search for)."""
    return rf"(?<![\w-]){term_body(term)}"


@dataclass(frozen=True)
class Term:
    concept: str
    text: str
    regex: re.Pattern[str]
    length: int = 0   # > 0: a plain term whose whole-word key match is proof enough


class Hit(NamedTuple):
    """One term found in a field (a tuple: a document has dozens, made on the hot path)."""
    concept: str
    term: str      # the text as written in the field
    start: int
    end: int


# Hit(...) goes through a Python-level __new__; tuple.__new__(Hit, fields) makes the same
# object in C, at half the cost (TermIndex makes ~15 per record).
_new_hit = tuple.__new__


class _SpaceForNonAlnum(dict):
    """A str.translate table that maps every character but letters and digits to a space,
    filling itself as characters are met (translate is ~20x faster than re.sub here)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = char if char.isalnum() else " "
        return self[code]


_WORDS_ONLY = _SpaceForNonAlnum()


def lower_same_length(text: str) -> str:
    """Lower-cased, keeping every offset: the few characters that lengthen when lower-cased
    ("İ") stay as they are."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(char.lower() if len(char.lower()) == 1 else char for char in text)
    return lower


# The same mapping for ASCII text (most titles and abstracts), as a bytes table: bytes.translate
# is one C loop, where str.translate looks characters up in the dict.
_ASCII_WORDS_ONLY = bytes(ord(chr(code).lower()) if chr(code).isalnum() else 32 for code in range(128)) \
    + bytes(range(128, 256))


def normalise(text: str) -> str:
    """Lower-case with every non-word character a space, keeping offsets: the text that
    term keys are looked up in."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS_ONLY).decode("ascii")
    return lower_same_length(text).translate(_WORDS_ONLY)


class TermIndex:
    """Every literal term of every concept, found in one pass over a field.

    Python's regex engine tries each alternative of a large alternation at every character,
    so hundreds of terms cost hundreds of passes. Here an Aho-Corasick automaton (ahocorasick_rs,
    in Rust) finds every whole-word key, and every relation-pattern trigger, in one pass over the
    normalised text; each candidate that needs it is confirmed with its term's anchored regex
    (benchmarks/classify.py measures the difference).
    """

    def __init__(self) -> None:
        self._keys: dict[str, list[Term]] = {}
        self._triggers: dict[str, list[Hashable]] = {}   # normalised trigger -> what it triggers
        self._automaton: ahocorasick_rs.AhoCorasick | None = None
        self._payloads: list[tuple[tuple, tuple]] = []   # per automaton key: (terms, targets)

    def add(self, concept: str, terms: list[str], where: str) -> None:
        for text in terms:
            if not isinstance(text, str) or not text.strip("* "):
                raise ProfileError(f"{where}: empty or non-text term {text!r}")
            core = text.rstrip("*")
            plain = not text.endswith("*") and not _is_abbreviation(core) and all(
                char.isalnum() or char in " -" for char in core)
            try:
                term = Term(concept, text, re.compile(term_body(text), re.IGNORECASE), len(core) if plain else 0)
            except re.error as error:
                raise ProfileError(f"{where}: term {text!r} does not compile: {error}") from None
            words = normalise(core).split()
            if not words:
                raise ProfileError(f"{where}: term {text!r} has no letters or digits")
            # Keys are padded with spaces so that only whole words match; a wildcard term
            # ("lymphoma*") is open at its end.
            key = " " + " ".join(words) + ("" if text.endswith("*") else " ")
            same_key = self._keys.setdefault(key, [])
            # "CAR T cell*" and "CAR-T cell*" are one regex: confirming it once is enough.
            if not any(other.concept == concept and other.regex.pattern == term.regex.pattern
                       for other in same_key):
                same_key.append(term)
        self._automaton = None

    def add_triggers(self, triggers: Iterable[str], target: Hashable) -> None:
        """Literal triggers, found in the same pass as the terms (scan_with_triggers): where one
        starts is reported under `target` (a relation pattern, or the name of a group of words).

        Looked up in the normalised text, so a trigger matches a little more than it says
        ("third-line" also finds "third line"); the regex it guards then decides.
        """
        for trigger in triggers:
            key = normalise(trigger)
            if not key[:1].isalnum():
                raise ProfileError(f"trigger {trigger!r} must start with a letter or digit")
            targets = self._triggers.setdefault(key, [])
            if target not in targets:
                targets.append(target)
        self._automaton = None

    def _built(self) -> ahocorasick_rs.AhoCorasick:
        if self._automaton is None:
            keys, self._payloads = [], []
            bodies = {(term.concept, term.regex.pattern) for terms in self._keys.values() for term in terms}
            for key, terms in self._keys.items():
                # "CAR-T" need not be tried where "CAR-T*" is: the wildcard matches all it does,
                # as far or further, and the longer match wins.
                needed = [term for term in terms if term.text.endswith("*")
                          or (term.concept, term_body(term.text + "*")) not in bodies]
                if needed:
                    keys.append(key)
                    self._payloads.append((tuple((term.concept, term.length, term.regex, term.text.endswith("*"))
                                                 for term in needed), ()))
            for key, targets in self._triggers.items():
                # Term keys start with a space and triggers with a letter: no key is both.
                keys.append(key)
                self._payloads.append(((), tuple(targets)))
            # A DFA: more memory (a few MB here), the fewest steps per character.
            self._automaton = ahocorasick_rs.AhoCorasick(keys, implementation=ahocorasick_rs.Implementation.DFA)
        return self._automaton

    def scan(self, text: str) -> dict[str, list[Hit]]:
        """Non-overlapping hits per concept, longest term first at each position."""
        return self.scan_with_triggers(text)[0]

    def scan_with_triggers(self, text: str) -> tuple[dict[str, list[Hit]], dict[Hashable, list[int]]]:
        """The hits per concept (as scan), and for each trigger target the offsets where one of
        its triggers starts (not necessarily in order): one pass over the text."""
        if not self._keys and not self._triggers:
            return {}, {}
        padded = " " + normalise(text) + " "
        automaton, payloads = self._built(), self._payloads
        candidates: list[tuple[int, int, tuple]] = []
        offsets: dict[Hashable, list[int]] = {}
        # Offsets in `padded`: a term key starts with the space before its word, so the word
        # starts in `text` where the key starts; a trigger starts one character earlier in `text`.
        for number, start, end in automaton.find_matches_as_indexes(padded, overlapping=True):
            terms, targets = payloads[number]
            if terms:
                candidates.append((start, start - end, terms))
            else:
                for target in targets:
                    if target in offsets:
                        offsets[target].append(start - 1)
                    else:
                        offsets[target] = [start - 1]
        # By start, and at one start the longest key first.
        candidates.sort()
        found: dict[str, list[Hit]] = {}
        last: dict[str, Hit] = {}   # each concept's latest hit
        for start, _, terms in candidates:
            # "B-ALL" is not "ALL", "R-ICE" not "ICE": no term starts after a one-letter prefix.
            if start >= 2 and text[start - 1] == "-" and text[start - 2].isalnum() and \
                    (start == 2 or not text[start - 3].isalnum()):
                continue
            for concept, length, regex, wildcard in terms:
                previous = last.get(concept)
                if previous is not None:
                    if previous.start != start and start < previous.end:
                        continue   # inside this concept's previous hit
                    if previous.start == start and not wildcard:
                        continue   # a longer key matched here, and an exact term ends where its key does
                if length:   # letters, digits, spaces and hyphens only: the key proved it
                    end = start + length
                else:
                    match = regex.match(text, start)
                    if match is None:
                        continue
                    end = match.end()
                if previous is None or previous.start != start:
                    last[concept] = hit = _new_hit(Hit, (concept, text[start:end], start, end))
                    found.setdefault(concept, []).append(hit)
                elif end > previous.end:   # a wildcard reaching further than the longer key
                    last[concept] = found[concept][-1] = _new_hit(Hit, (concept, text[start:end], start, end))
        return found, offsets


class TriggerIndex:
    """Which relation patterns each literal trigger starts, registered in the TermIndex so that
    its one pass over a field also says where each pattern can begin. A pattern is then tried
    only there, and not at all on a field without its triggers."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.by_trigger: dict[str, list[Pattern]] = {}
        self.untriggered: list[Pattern] = []   # no known literal start: always run
        self.needs_car: list[Pattern] = []
        for pattern in patterns:
            for trigger in pattern.triggers:
                self.by_trigger.setdefault(trigger, []).append(pattern)
            if not pattern.triggers:
                self.untriggered.append(pattern)
            if pattern.needs_car:
                self.needs_car.append(pattern)
        # A trigger that begins with another ("relapsed", "relaps") is looked up as the shorter
        # one: its patterns are tried at a few more places, and the automaton reports one
        # trigger where it reported three.
        for trigger in sorted(self.by_trigger, key=len, reverse=True):
            shorter = [other for other in self.by_trigger if other != trigger and trigger.startswith(other)]
            if shorter:
                into = self.by_trigger[min(shorter, key=len)]
                into.extend(pattern for pattern in self.by_trigger.pop(trigger) if pattern not in into)
        # Patterns that begin with a CAR-T mention start where the CAR-T hits do.
        self.car_led: list[Pattern] = self.by_trigger.pop(CAR_SENTINEL, [])

    def register(self, index: TermIndex) -> None:
        for trigger, patterns in self.by_trigger.items():
            for pattern in patterns:
                index.add_triggers([trigger], pattern)

    def complete(self, offsets: dict[Hashable, list[int]], car_starts: list[int]) -> None:
        """Finish a field's offsets (TermIndex.scan_with_triggers): CAR-led patterns start at the
        CAR-T hits, patterns without triggers always run (offsets []), and patterns that need
        CAR-T do not run on a field without it."""
        if car_starts:
            for pattern in self.car_led:
                offsets[pattern] = offsets.get(pattern, []) + car_starts
        else:
            for pattern in self.needs_car:
                offsets.pop(pattern, None)
        for pattern in self.untriggered:
            if car_starts or not pattern.needs_car:
                offsets[pattern] = []


def lower_pattern(pattern: str) -> str:
    """Lower-case a regex's literal letters, leaving escapes (\\W, \\S, \\d ...) alone."""
    out, escaped = [], False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = not escaped and char == "\\"
    return "".join(out)


@dataclass(frozen=True, eq=False)   # hashed by identity: the key of its offsets in a field
class Pattern:
    """A relation pattern, run on the lower-cased, CAR-masked text of a field.

    Python's regex engine tries a pattern that begins with a choice of words at every position
    of the text. Most patterns begin with literal triggers ("relaps", "after", the CAR-T
    sentinel ...), so they are tried only where a trigger starts, as found in the same automaton
    pass as the terms (TermIndex.scan_with_triggers); the rest scan the text. A leading word boundary is
    checked in Python, and matching lower-case text without IGNORECASE keeps the engine's
    literal fast paths (benchmarks/classify.py measures the difference).
    `needs_car` patterns only run on fields that name CAR-T.
    """
    regex: re.Pattern[str]
    needs_car: bool
    word_start: bool
    triggers: frozenset[str] = frozenset()   # every match starts with one of these; empty: unknown
    excludes: re.Pattern[str] | None = None  # a match containing this is dropped ({GAP} patterns)
    preceded_by: str | None = None           # "therapy": a therapy term must end just before
    within: int = 60
    line_start: bool = False                 # begins with ^: tried at the start of each line

    def matches(self, text: str, offsets: list[int]) -> list[re.Match[str]]:
        """The non-overlapping matches, left to right, that begin a word (if the pattern asks)
        and contain no excluded words. `offsets`: where the pattern's triggers start in `text`
        (TermIndex.scan_with_triggers); unused for a pattern without triggers.

        A list, not a generator: most calls find nothing, and that case stays in C.
        """
        if self.triggers:
            # Should two triggers start at one offset, the repeated offset finds the same
            # match, which `reached` then skips.
            positions = offsets if len(offsets) == 1 else sorted(offsets)
        elif self.line_start:
            positions = [0]
            while (newline := text.find("\n", positions[-1])) >= 0:
                positions.append(newline + 1)
        else:
            positions = None
        candidates = list(self.regex.finditer(text)) if positions is None else \
            list(filter(None, map(self.regex.match, repeat(text), positions)))
        if not candidates:
            return candidates
        found, reached = [], 0
        for match in candidates:
            start = match.start()
            if start < reached:
                continue
            if self.word_start and start and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue
            # Checked on the match, not inside the regex: a lookahead at every gap character
            # ("tempered" gap) costs far more than one search of a short span.
            if self.excludes is not None and self.excludes.search(match.group(0)):
                continue
            reached = max(match.end(), start + 1)
            found.append(match)
        return found


@dataclass(frozen=True)
class Cue:
    name: str
    weight: int
    title_weight: int
    patterns: tuple[Pattern, ...]
    title_patterns: tuple[Pattern, ...] = ()
    kind: str = "focus"


@dataclass(frozen=True)
class TherapyRule:
    key: str
    label: str
    mesh: frozenset[str]
    exclude: tuple[re.Pattern[str], ...] = ()
    # Per exclude pattern, the name its literal triggers are found under in a field's trigger
    # offsets, or None when it has no literal start (then it is always tried).
    exclude_triggers: tuple[str | None, ...] = ()


# Trigger names (not words) under which the TermIndex reports the therapy-context words and
# each therapy's exclude patterns: one lookup tells whether any of them is in a field.
THERAPY_CONTEXT_TRIGGER = "\x00therapy context"


def exclude_trigger(key: str, number: int) -> str:
    return f"\x00exclude {key} {number}"


@dataclass
class Lexicon:
    version: str
    sections: tuple[str, ...]
    section_labels: dict[str, str]
    excluded_publication_types: frozenset[str]
    index: TermIndex
    car_mesh: frozenset[str]
    lymphoma_mesh_prefixes: tuple[str, ...]
    other_mesh_prefixes: tuple[str, ...]
    relevance_threshold: int
    core_needs_car_in_title: bool
    cues: tuple[Cue, ...]
    therapies: tuple[TherapyRule, ...]
    ignore_context: re.Pattern[str]
    ignore_window: int
    study_publication_types: dict[str, frozenset[str]]
    study_patterns: dict[str, tuple[Pattern, ...]]
    study_weights: dict[str, int]
    study_priority: tuple[str, ...]
    study_default: str
    triggers: TriggerIndex | None = None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # Lookups the classifier makes per hit or heading, derived from the lists above.
    therapy_by_concept: dict[str, tuple[int, TherapyRule]] = field(init=False, repr=False)
    therapies_by_mesh: dict[str, list[tuple[int, TherapyRule]]] = field(init=False, repr=False)
    study_kind_by_concept: dict[str, str] = field(init=False, repr=False)
    # The relevance patterns to try on a field, in profile order, each with its cue's index: on
    # a title (with the title-only patterns when the title names CAR-T), and on the abstract or
    # keywords (cues of weight 0 count in titles only).
    title_runs: tuple[tuple[Pattern, int], ...] = field(init=False, repr=False)
    title_runs_with_car: tuple[tuple[Pattern, int], ...] = field(init=False, repr=False)
    body_runs: tuple[tuple[Pattern, int], ...] = field(init=False, repr=False)
    study_runs: tuple[tuple[Pattern, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.title_runs = tuple((pattern, index) for index, cue in enumerate(self.cues) for pattern in cue.patterns)
        self.title_runs_with_car = tuple(
            (pattern, index) for index, cue in enumerate(self.cues)
            for pattern in cue.patterns + cue.title_patterns)
        self.body_runs = tuple((pattern, index) for index, cue in enumerate(self.cues) if cue.weight
                               for pattern in cue.patterns)
        self.study_runs = tuple((pattern, kind) for kind, patterns in self.study_patterns.items()
                                for pattern in patterns)
        self.therapy_by_concept = {therapy_concept(rule.key): (order, rule)
                                   for order, rule in enumerate(self.therapies)}
        self.therapies_by_mesh = {}
        for order, rule in enumerate(self.therapies):
            for heading in rule.mesh:
                self.therapies_by_mesh.setdefault(heading, []).append((order, rule))
        self.study_kind_by_concept = {study_concept(kind): kind for kind in STUDY_TYPES}


# Concept names in the TermIndex.
CAR = "car_t"
LYMPHOMA = "disease:lymphoma"
OTHER_DISEASE = "disease:other"


def therapy_concept(key: str) -> str:
    return f"therapy:{key}"


def study_concept(kind: str) -> str:
    return f"study:{kind}"


def _list(data: dict, key: str, where: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ProfileError(f"{where}: '{key}' must be a list")
    return value


def _compile(pattern: str, placeholders: dict[str, str], where: str) -> re.Pattern[str]:
    text = pattern
    for name, replacement in placeholders.items():
        text = text.replace("{" + name + "}", replacement)
    try:
        return re.compile(text, re.IGNORECASE | re.MULTILINE)
    except re.error as error:
        raise ProfileError(f"{where}: pattern {pattern!r} does not compile: {error}") from None


def literal_triggers(regex: str, minimum: int = 3) -> tuple[str, ...]:
    """The literal strings one of which every match of `regex` must start with, if the regex
    begins with literals or a choice of literals ("(?:relaps|progress|fail)..."); else ().

    A pattern whose triggers are absent from a field is not run on it at all, and where they
    are present it is tried only at their offsets.
    """
    try:
        parsed = list(re_parser.parse(regex))
    except re.error:
        return ()

    def prefixes(items: list) -> list[str] | None:
        literal = ""
        for op, value in items:
            if op is re_constants.AT and not literal:
                continue
            # A lookbehind consumes nothing: the match still starts at what follows it.
            if op is re_constants.ASSERT and value[0] < 0 and not literal:
                continue
            if op is re_constants.LITERAL:
                literal += chr(value)
                continue
            if not literal and op is re_constants.SUBPATTERN:
                return prefixes(list(value[-1]))
            if not literal and op is re_constants.BRANCH:
                found = []
                for alternative in value[1]:
                    branch = prefixes(list(alternative))
                    if branch is None:
                        return None
                    found.extend(branch)
                return found
            break
        return [literal] if _selective(literal, minimum) else None

    found = prefixes(parsed)
    return tuple(sorted(set(found))) if found and all(_selective(text, minimum) for text in found) else ()


def _selective(trigger: str, minimum: int) -> bool:
    """Worth looking up: a few letters or digits first (what the TermIndex finds), or the CAR-T
    sentinel (whose offsets are the CAR-T hits)."""
    return trigger == CAR_SENTINEL or len(trigger) >= minimum and trigger[0].isalnum()


def _patterns(patterns: list[Any], placeholders: dict[str, str], where: str,
              gap_excludes: re.Pattern[str] | None = None) -> tuple[Pattern, ...]:
    """Each entry is a regex, or a table {pattern = "...", preceded_by = "therapy", within = 60}
    for a match that counts only right after a term of the therapy lexicon."""
    compiled = []
    for entry in patterns:
        options = entry if isinstance(entry, dict) else {}
        pattern = options.get("pattern", entry)
        if options.get("preceded_by") not in (None, "therapy"):
            raise ProfileError(f"{where}: preceded_by can only be \"therapy\"")
        text = pattern
        for name, replacement in placeholders.items():
            text = text.replace("{" + name + "}", replacement)
        # One regex per pattern: an alternation of patterns would defeat the engine's literal
        # prefix scan and run slower than the patterns one by one.
        word_start = text.startswith("\\b")
        source = lower_pattern(text[2:] if word_start else text)
        try:
            regex = re.compile(source, re.MULTILINE)
        except re.error as error:
            raise ProfileError(f"{where}: pattern {pattern!r} does not compile: {error}") from None
        compiled.append(Pattern(regex, "{CAR}" in pattern, word_start, frozenset(literal_triggers(source)),
                                gap_excludes if "{GAP}" in pattern else None,
                                options.get("preceded_by"), int(options.get("within", 60)),
                                line_start=source.startswith("^")))
    return tuple(compiled)


def build_lexicon(profile: Profile) -> Lexicon:
    """Compile the profile's classifier section; every mistake names the entry at fault."""
    data = profile.raw.get("classifier")
    where = f"{profile.source}: [classifier]"
    if not isinstance(data, dict):
        raise ProfileError(f"{profile.source} has no [classifier] section")
    index = TermIndex()
    car = data.get("car_t", {})
    index.add(CAR, _list(car, "terms", f"{where}.car_t") + _list(car, "same_target_terms", where),
              f"{where}.car_t")
    words = data.get("relevance", {}).get("words", {})
    # CAR-T mentions are masked with same-length sentinels before relation patterns run, so
    # {CAR} is one cheap character class and match offsets still point into the original text.
    placeholders = {"CAR": CAR_SENTINEL + CAR_FILLER + "*+", "FAIL": words.get("FAIL", r"\bfail\w*"),
                    "GAP": words.get("GAP", r"[^.;]{0,60}?")}
    gap_excludes = _compile(lower_pattern(words["GAP_EXCLUDES"]), {}, f"{where}.relevance.words") \
        if words.get("GAP_EXCLUDES") else None

    cues = []
    for number, cue in enumerate(_list(data.get("relevance", {}), "cues", where), 1):
        cue_where = f"{where}.relevance.cues[{number}]"
        cues.append(Cue(
            name=cue.get("name", f"cue {number}"), weight=int(cue.get("weight", 0)),
            title_weight=int(cue.get("title_weight", 0)), kind=cue.get("kind", "focus"),
            patterns=_patterns(_list(cue, "patterns", cue_where), placeholders, cue_where, gap_excludes),
            title_patterns=_patterns(_list(cue, "title_patterns", cue_where), placeholders, cue_where,
                                     gap_excludes)))

    sections = tuple(data.get("sections", THERAPY_KEYS))
    unknown = set(sections) - set(THERAPY_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
                           f"use the therapy keys {', '.join(THERAPY_KEYS)}")
    therapies = []
    labels = {}
    for key in sections:
        rule = data.get("therapies", {}).get(key, {})
        rule_where = f"{where}.therapies.{key}"
        labels[key] = rule.get("label", key.replace("_", " ").capitalize())
        index.add(therapy_concept(key), _list(rule, "terms", rule_where), rule_where)
        excludes = tuple(_compile(p, placeholders, rule_where) for p in _list(rule, "exclude", rule_where))
        exclude_names: list[str | None] = []
        for number, exclude in enumerate(excludes):
            exclude_names.append(None)
            words = literal_triggers(lower_pattern(exclude.pattern))
            if words and all(word[0].isalnum() for word in words):
                exclude_names[-1] = exclude_trigger(key, number)
                index.add_triggers(words, exclude_names[-1])
        therapies.append(TherapyRule(
            key=key, label=labels[key],
            mesh=frozenset(term.lower() for term in _list(rule, "mesh", rule_where)),
            exclude=excludes, exclude_triggers=tuple(exclude_names)))

    disease = data.get("disease", {})
    index.add(LYMPHOMA, _list(disease, "lymphoma", where), f"{where}.disease.lymphoma")
    index.add(OTHER_DISEASE, _list(disease, "other", where), f"{where}.disease.other")

    study = data.get("study_types", {})
    study_pts = {kind: frozenset(types) for kind, types in study.get("publication_types", {}).items()}
    study_patterns, study_weights = {}, {}
    for kind, cue in study.get("cues", {}).items():
        cue_where = f"{where}.study_types.cues.{kind}"
        if kind not in STUDY_TYPES:
            raise ProfileError(f"{cue_where}: unknown study type '{kind}'")
        index.add(study_concept(kind), _list(cue, "terms", cue_where), cue_where)
        study_patterns[kind] = _patterns(_list(cue, "patterns", cue_where), placeholders, cue_where)
        study_weights[kind] = int(cue.get("weight", 1))
    for kind in study_pts:
        if kind not in STUDY_TYPES:
            raise ProfileError(f"{where}.study_types: unknown study type '{kind}'")

    context = data.get("therapy_context", {})
    ignore_words = _list(context, "ignore_after", where) or ["first-line"]
    if not all(isinstance(word, str) and normalise(word)[:1].isalnum() for word in ignore_words):
        raise ProfileError(f"{where}.therapy_context: each ignore_after entry must start with a letter or digit")
    index.add_triggers([word.lower() for word in ignore_words], THERAPY_CONTEXT_TRIGGER)
    every_pattern = [p for cue in cues for p in cue.patterns + cue.title_patterns] + \
        [p for patterns in study_patterns.values() for p in patterns]
    triggers = TriggerIndex(every_pattern)
    triggers.register(index)
    return Lexicon(
        version=str(data.get("version", "1")),
        sections=sections,
        section_labels=labels,
        excluded_publication_types=frozenset(_list(data, "excluded_publication_types", where)),
        index=index,
        car_mesh=frozenset(term.lower() for term in _list(car, "mesh", where)),
        lymphoma_mesh_prefixes=tuple(_list(disease, "lymphoma_mesh_prefixes", where)),
        other_mesh_prefixes=tuple(_list(disease, "other_mesh_prefixes", where)),
        relevance_threshold=int(data.get("relevance", {}).get("threshold", 2)),
        core_needs_car_in_title=bool(data.get("relevance", {}).get("core_needs_car_in_title", False)),
        cues=tuple(cues),
        therapies=tuple(therapies),
        ignore_context=re.compile(r"(?:" + "|".join(re.escape(word) for word in ignore_words)
                                  + r")[^.;]*$", re.IGNORECASE),
        ignore_window=int(context.get("ignore_window", 40)),
        study_publication_types=study_pts,
        study_patterns=study_patterns,
        study_weights=study_weights,
        study_priority=tuple(study.get("priority", STUDY_TYPES)),
        study_default=study.get("default", "real_world"),
        triggers=triggers,
        raw=data,
    )
