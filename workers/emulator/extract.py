"""Rows of OCR words -> markets (events with outcomes and odds) and boost cards.

A sportsbook screen reads top to bottom as: a section header ("NBA Moneyline"), then per event
a time line ("WED 19:30") and one row per outcome, a name on the left and a price button on
the right (two rows, three with a Draw); promo cards ("ODDS BOOST", "<selection> to win",
"was +150 now +200") may sit side by side. Every value carries Tesseract's confidence; a value
below `min_conf`, or that does not validate, is re-read from its cropped cell, and if it still
fails it is kept as `raw` with `odds: null` and a flag -- never guessed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from workers.emulator import ocr
from workers.emulator.odds import Odds, looks_like_odds, parse_odds

DEFAULT_MIN_CONF = 60.0  # measured: correct odds on clean screens read >= 64 (bench/ocr_accuracy.py)
OVERROUND_RANGE = (1.0, 1.25)
_TIME = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN|TODAY|TOMORROW|TMRW|LIVE)\b.*\d{1,2}[:.]\d{2}",
                   re.IGNORECASE)
_BOOST = re.compile(r"\bBOOST(ED)?\b", re.IGNORECASE)


@dataclass
class Value:
    """One odds value read from the screen."""

    raw: str
    conf: float
    odds: Odds | None
    via: str = "ocr"  # ocr | reread
    flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"odds": self.odds.text if self.odds else None,
                "format": self.odds.format if self.odds else None,
                "decimal": self.odds.decimal if self.odds else None,
                "raw": self.raw, "conf": round(self.conf, 1), "via": self.via,
                "flags": self.flags}


@dataclass
class _Event:
    label: str
    section: str
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    top: int = 0


@dataclass
class _Card:
    left: int
    selection: str = ""
    selection_conf: float = 0.0
    was: Value | None = None
    now: Value | None = None


class Extractor:
    """Turns one prepared screenshot's words into markets and boosts."""

    def __init__(self, prepared: ocr.Prepared, *, min_conf: float = DEFAULT_MIN_CONF,
                 expect: str | None = None, reread: bool = True) -> None:
        self.prepared = prepared
        self.min_conf = min_conf
        self.expect = expect  # a fixed odds format for this book, or None to infer per section
        self.do_reread = reread
        self.rereads = 0

    def extract(self, found: list[ocr.Word]) -> dict[str, Any]:
        """{"markets": [...], "boosts": [...], "flags": [...]} for these words."""
        events: list[_Event] = []
        cards: list[_Card] = []
        done_cards: list[_Card] = []
        section = ""
        event: _Event | None = None
        for row in ocr.rows(found):
            text = row.text
            segs = row.segments()
            if _BOOST.search(text):
                done_cards += cards
                cards = [_Card(seg[0].left) for seg in segs if _BOOST.search(_join(seg))]
                continue
            if cards and self._card_row(cards, segs):
                continue
            done_cards += cards
            cards = []
            if _TIME.match(text):
                event = _Event(text, section, top=row.top)
                events.append(event)
                continue
            value = self._odds_of(segs[-1]) if len(segs) >= 2 else None
            if value is None:
                if not any(looks_like_odds(w.text) for w in row.words):
                    section = text
                    event = None
                continue
            if event is None:
                event = _Event("", section, top=row.top)
                events.append(event)
            name_words = [w for seg in segs[:-1] for w in seg]
            self._add_outcome(event, name_words, value)
        done_cards += cards
        markets = [m for m in (self._market(e) for e in events) if m is not None]
        self._check_formats(markets)
        boosts = [self._boost(c) for c in done_cards if c.was or c.now or c.selection]
        return {"markets": markets, "boosts": boosts}

    def _add_outcome(self, event: _Event, name_words: list[ocr.Word], value: Value) -> None:
        name = " ".join(w.text for w in name_words)
        name_conf = min(w.conf for w in name_words)
        flags = list(value.flags)
        if name_conf < self.min_conf and self.do_reread:
            self.rereads += 1
            text, conf2 = ocr.reread(self.prepared, _box(name_words), whitelist=None)
            if text == name:  # two reads agree
                name_conf = max(name_conf, conf2, self.min_conf)
            elif conf2 >= self.min_conf:
                flags.append(f"reread_name: {name!r} at {name_conf:.0f} -> {text!r} at {conf2:.0f}")
                name, name_conf = text, conf2
        shown: str | None = name
        if name_conf < self.min_conf:
            flags.append(f"low_confidence_name: {name!r} at {name_conf:.0f} < {self.min_conf:.0f}")
            shown = None
        event.values.append(value)
        event.outcomes.append({"name": shown, "raw_name": name, "name_conf": round(name_conf, 1),
                               **value.to_json(), "flags": flags})

    def _odds_of(self, seg: list[ocr.Word]) -> Value | None:
        """The price in a row's last segment, or None when it is not a price at all."""
        raw = "".join(w.text for w in seg)
        if not looks_like_odds(raw) and parse_odds(raw) is None:
            return None
        conf = min(w.conf for w in seg)
        odds = parse_odds(raw, self.expect)
        if odds is not None and conf >= self.min_conf:
            return Value(raw, conf, odds)
        box = _box(seg)
        if self.do_reread:
            self.rereads += 1
            text, conf2 = ocr.reread(self.prepared, box)
            again = parse_odds(text, self.expect)
            if again is not None and conf2 >= self.min_conf and (odds is None or again == odds):
                return Value(raw, max(conf, conf2), again, via="reread")
            if again is not None and odds is not None and again != odds:
                return Value(raw, min(conf, conf2), None,
                             flags=[f"disagreement: {raw!r} vs re-read {text!r}"])
        why = (f"low_confidence: {raw!r} at {conf:.0f} < {self.min_conf:.0f}" if odds is not None
               else f"unreadable: {raw!r} is not {self.expect or 'American, decimal or fractional'} odds")
        return Value(raw, conf, None, flags=[why])

    def _card_row(self, cards: list[_Card], segs: list[list[ocr.Word]]) -> bool:
        """Fill boost cards from a row of their content; False when the row is not theirs."""
        used = False
        for seg in segs:
            card = max((c for c in cards if c.left <= seg[0].left + 4), key=lambda c: c.left,
                       default=None)
            if card is None:
                continue
            words = seg
            i = 0
            while i < len(words):
                label = words[i].text.lower().strip(":")
                if label in ("was", "now") and i + 1 < len(words):
                    value = self._odds_of([words[i + 1]])
                    if value is not None:
                        setattr(card, label, value)
                        used = True
                        i += 2
                        continue
                i += 1
            text = _join(seg)
            if re.search(r"\bto win\b", text, re.IGNORECASE) and not card.selection:
                card.selection = re.sub(r"\s+to win\b.*$", "", text, flags=re.IGNORECASE)
                card.selection_conf = min(w.conf for w in seg)
                used = True
        return used

    def _market(self, e: _Event) -> dict[str, Any] | None:
        if not e.outcomes:
            return None
        flags = []
        if len(e.outcomes) < 2:
            flags.append("incomplete: one outcome read")
        good = [v.odds for v in e.values if v.odds is not None]
        overround = round(sum(o.implied for o in good), 4) if len(good) == len(e.values) else None
        if overround is not None and len(good) >= 2 and not (
                OVERROUND_RANGE[0] <= overround <= OVERROUND_RANGE[1]):
            flags.append(f"suspect: implied probabilities sum to {overround:.3f}, outside "
                         f"{OVERROUND_RANGE[0]}..{OVERROUND_RANGE[1]} for one book")
        low = sum(1 for o in e.outcomes if o["odds"] is None or o["name"] is None)
        return {"section": e.section, "market": _market_key(e.section, len(e.outcomes)),
                "event": e.label, "y": e.top, "outcomes": e.outcomes,
                "overround": overround, "complete": not low and len(e.outcomes) >= 2,
                "flags": flags}

    def _check_formats(self, markets: list[dict[str, Any]]) -> None:
        """One format per section: a price in another format is flagged, not trusted."""
        by_section: dict[str, Counter[str]] = {}
        for m in markets:
            c = by_section.setdefault(m["section"], Counter())
            c.update(o["format"] for o in m["outcomes"] if o["format"])
        for m in markets:
            counts = by_section[m["section"]]
            if not counts:
                continue
            fmt, n = counts.most_common(1)[0]
            m["format"] = fmt
            for o in m["outcomes"]:
                if o["format"] and o["format"] != fmt and n > 1:
                    o["flags"].append(f"format_mismatch: {o['odds']} is {o['format']}, "
                                      f"the section shows {fmt}")
                    o.update(odds=None, format=None, decimal=None)
                    m["complete"] = False

    def _boost(self, c: _Card) -> dict[str, Any]:
        flags = []
        if not (c.was and c.was.odds and c.now and c.now.odds):
            flags.append("incomplete: boost prices not both read")
        elif c.now.odds.decimal <= c.was.odds.decimal:
            flags.append("suspect: boosted price is not better than the old one")
        return {"selection": c.selection or None, "selection_conf": round(c.selection_conf, 1),
                "was": c.was.to_json() if c.was else None,
                "now": c.now.to_json() if c.now else None, "flags": flags}


def _box(words: list[ocr.Word]) -> tuple[int, int, int, int]:
    return (min(w.left for w in words), min(w.top for w in words),
            max(w.right for w in words), max(w.bottom for w in words))


def _join(seg: list[ocr.Word]) -> str:
    return " ".join(w.text for w in seg)


def _market_key(section: str, n: int) -> str:
    s = section.lower()
    if "moneyline" in s or "money line" in s or "match result" in s or "1x2" in s or "winner" in s:
        return "h2h"
    return "h2h" if n in (2, 3) else "unknown"
