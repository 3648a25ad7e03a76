"""The topic profile: what to search, which papers' citations to follow, which feeds to read.

A profile is a TOML data file; the shipped default is post-CAR-T relapse in B-cell lymphoma.
Users point `profile` in their config at their own copy.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tracker.errors import ProfileError

DEFAULT_PROFILE = "post_cart_relapse.toml"


@dataclass(frozen=True)
class Query:
    name: str
    term: str
    description: str = ""
    label: str = ""          # a few words for readers: "CAR-T failure in B-cell lymphoma"


@dataclass(frozen=True)
class Seed:
    pmid: str
    label: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    queries: tuple[Query, ...]
    seeds: tuple[Seed, ...] = ()
    feeds: tuple[Any, ...] = ()          # URLs, or {name, url} tables
    description: str = ""
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _require(data: dict, key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ProfileError(f"{where}: '{key}' is missing")
    if not isinstance(data[key], kind):
        raise ProfileError(f"{where}: '{key}' must be {kind.__name__}")
    return data[key]


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate a profile's TOML data; every problem names the file and the entry."""
    queries = []
    for index, entry in enumerate(_require(data, "queries", list, source), 1):
        where = f"{source}: query {index}"
        name = _require(entry, "name", str, where)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ProfileError(f"{where}: name '{name}' must be lower-case letters, digits, - or _")
        term = " ".join(_require(entry, "term", str, where).split())
        if not term:
            raise ProfileError(f"{where}: term is empty")
        queries.append(Query(name, term, entry.get("description", ""), entry.get("label", name)))
    if len({query.name for query in queries}) != len(queries):
        raise ProfileError(f"{source}: two queries share a name")
    seeds = []
    for index, entry in enumerate(data.get("seeds", []), 1):
        pmid = str(_require(entry, "pmid", (str, int), f"{source}: seed {index}"))
        if not pmid.isdigit():
            raise ProfileError(f"{source}: seed {index}: pmid '{pmid}' is not a PubMed id")
        seeds.append(Seed(pmid, entry.get("label", "")))
    feeds = data.get("feeds", [])
    if not isinstance(feeds, list) or not all(
            isinstance(feed, str) or (isinstance(feed, dict) and {"name", "url"} <= set(feed)) for feed in feeds):
        raise ProfileError(f"{source}: 'feeds' must be a list of URLs or {{name = ..., url = ...}} tables")
    return Profile(name=_require(data, "name", str, source), title=data.get("title", data["name"]),
                   queries=tuple(queries), seeds=tuple(seeds), feeds=tuple(feeds),
                   description=data.get("description", ""), source=source, raw=data)


def load_profile(path: Path | None = None) -> Profile:
    """Load a profile file, or the shipped default when `path` is None."""
    try:
        if path is None:
            text = resources.files("tracker.profiles").joinpath(DEFAULT_PROFILE).read_text("utf-8")
            source = f"built-in profile {DEFAULT_PROFILE}"
        else:
            text = Path(path).read_text("utf-8")
            source = str(path)
    except FileNotFoundError:
        raise ProfileError(f"profile {path} does not exist: fix `profile` in the config") from None
    except OSError as error:
        raise ProfileError(f"cannot read profile {path}: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{source} is not valid TOML: {error}") from None
    return parse_profile(data, source)
