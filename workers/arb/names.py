"""Name normalisation and resolution to canonical (The Odds API) participant names.

normalise("GSW  Warriors!") -> "gsw warriors". A Resolver knows, per sport, every canonical
name and its aliases (aliases.json plus the names the API itself uses) and resolves a book's
name by exact alias first, then rapidfuzz ratio on OCR-folded forms (abbreviations exact only); a name whose best two canonical candidates
score within `gap` of each other is ambiguous and not resolved.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

from rapidfuzz import fuzz, process

_PUNCT = re.compile(r"[^a-z0-9 ]+")
_SPACE = re.compile(r"\s+")
DRAW = "Draw"


def normalise(name: str) -> str:
    """Lower case, ASCII, '&' -> 'and', punctuation dropped, spaces collapsed."""
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    s = s.lower().replace("&", " and ").replace(".", " ")
    return _SPACE.sub(" ", _PUNCT.sub(" ", s)).strip()


_FOLD = str.maketrans({"0": "o", "1": "l", "5": "s", "8": "b", "c": "e", "|": "l"})


def fold(norm: str) -> str:
    """Collapse characters OCR confuses (0/o, 1/l, 5/s, 8/b, c/e, rn/m) for fuzzy comparison."""
    return norm.replace("rn", "m").translate(_FOLD)


def load_aliases() -> dict[str, dict[str, list[str]]]:
    """The alias table shipped in the package: sport -> canonical -> [alias]."""
    text = resources.files("workers.arb").joinpath("aliases.json").read_text()
    return dict(json.loads(text)["sports"])


@dataclass(frozen=True)
class Resolved:
    canonical: str | None
    score: float
    reason: str = ""


class Resolver:
    """Resolve a book's participant names to canonical names, per sport; results are cached."""

    def __init__(self, aliases: dict[str, dict[str, list[str]]], *, threshold: float = 85.0,
                 gap: float = 5.0) -> None:
        self.threshold = threshold
        self.gap = gap
        self._exact: dict[str, dict[str, set[str]]] = {}
        self._choices: dict[str, tuple[list[str], list[str]]] = {}
        self._cache: dict[tuple[str, str], Resolved] = {}
        for sport, table in aliases.items():
            for canonical, names in table.items():
                self.add(sport, canonical, names)

    def add(self, sport: str, canonical: str, names: list[str] | tuple[str, ...] = ()) -> None:
        """Teach a canonical name (and aliases) for a sport."""
        exact = self._exact.setdefault(sport, {})
        for n in (canonical, *names):
            exact.setdefault(normalise(n), set()).add(canonical)
        self._choices.pop(sport, None)  # rebuilt on the next fuzzy lookup
        self._cache = {k: v for k, v in self._cache.items() if k[0] != sport} if self._cache else {}

    def _fuzzy_choices(self, sport: str) -> tuple[list[str], list[str]]:
        if sport not in self._choices:
            exact = self._exact.get(sport, {})
            # abbreviations (<= 3 characters) match exactly only: fuzzily they hide inside
            # other names ("PHI" in "Memphis")
            keys = [k for k in exact if len(k) > 3 and len(exact[k]) == 1]
            self._choices[sport] = ([fold(k) for k in keys], [min(exact[k]) for k in keys])
        return self._choices[sport]

    def resolve(self, sport: str, name: str) -> Resolved:
        key = (sport, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._resolve(sport, name)
        return hit

    def _resolve(self, sport: str, name: str) -> Resolved:
        norm = normalise(name)
        if norm == "draw":
            return Resolved(DRAW, 100.0)
        exact = self._exact.get(sport, {})
        if norm in exact:
            found = exact[norm]
            if len(found) == 1:
                return Resolved(next(iter(found)), 100.0)
            return Resolved(None, 100.0, f"ambiguous: {name!r} is an alias of {sorted(found)}")
        keys, canon = self._fuzzy_choices(sport)
        if not norm or not keys:
            return Resolved(None, 0.0, f"unknown: {name!r} (no names known for {sport})")
        best: dict[str, float] = {}
        for _alias, score, idx in process.extract(fold(norm), keys, scorer=fuzz.ratio, limit=8):
            c = canon[idx]
            best[c] = max(best.get(c, 0.0), float(score))
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        top, top_score = ranked[0]
        if top_score < self.threshold:
            return Resolved(None, round(top_score, 1),
                            f"unknown: {name!r} (closest {top!r} scores {top_score:.0f} "
                            f"< {self.threshold:.0f})")
        if len(ranked) > 1 and top_score - ranked[1][1] < self.gap:
            return Resolved(None, round(top_score, 1),
                            f"ambiguous: {name!r} fits {top!r} ({top_score:.0f}) and "
                            f"{ranked[1][0]!r} ({ranked[1][1]:.0f})")
        return Resolved(top, round(top_score, 1))
