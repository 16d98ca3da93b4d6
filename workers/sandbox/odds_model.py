"""The sandbox's sports-odds model (pure, seeded): events with canonical participants and
every bookmaker's prices, the ground truth for the sportsbook page (sportsbook.py, the OCR'd
book's view) and for a later The Odds API v4 feed (odds.py), which must serve the same events.

    model = OddsModel(seed=7, anchor_ms=day_start_ms)
    for ev in model.events():            # same seed + anchor -> same events, same prices
        ev.sport.key, ev.home.canonical, ev.away.canonical, ev.commence_ms
        ev.price("draftkings", ev.home.canonical)      # Price(decimal, american, fraction)
        ev.to_odds_api(odds_format="american")          # the v4 event shape (api-reference B.3)
    model.boosts()                        # the OCR'd book's boosted prices

Prices: each event has a true win probability; each bookmaker adds its own margin (overround
1.03..1.08) and noise, then rounds to its display ladder (American to 5 cents, decimal to 2 dp,
fractional to a traditional ladder), so every price is exact in the format it is shown in.
No I/O, no clock: the anchor (epoch ms) is given.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

HOUR_MS = 3_600_000
OCR_BOOK = "sandbook"
BOOKMAKERS: tuple[tuple[str, str], ...] = (
    ("draftkings", "DraftKings"), ("fanduel", "FanDuel"), ("betmgm", "BetMGM"),
    ("pinnacle", "Pinnacle"), (OCR_BOOK, "SandBook"))
FRACTION_LADDER = tuple(Fraction(n, d) for n, d in (
    (1, 10), (1, 8), (1, 6), (1, 5), (2, 9), (1, 4), (2, 7), (3, 10), (1, 3), (4, 11),
    (2, 5), (4, 9), (1, 2), (8, 15), (4, 7), (8, 13), (4, 6), (8, 11), (4, 5), (5, 6),
    (10, 11), (1, 1), (11, 10), (6, 5), (5, 4), (11, 8), (6, 4), (13, 8), (7, 4), (15, 8),
    (2, 1), (9, 4), (5, 2), (11, 4), (3, 1), (10, 3), (7, 2), (4, 1), (9, 2), (5, 1),
    (11, 2), (6, 1), (7, 1), (8, 1), (10, 1)))


@dataclass(frozen=True)
class Participant:
    """A team or fighter: `canonical` is the Odds API name; the rest are display styles."""

    canonical: str
    city: str = ""
    nickname: str = ""
    abbr: str = ""

    def aliases(self) -> tuple[str, ...]:
        """Every name a book may show for it (for matching)."""
        names = [self.canonical, self.city, self.nickname, self.abbr,
                 f"{self.abbr} {self.nickname}".strip() if self.abbr and self.nickname else ""]
        return tuple(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True)
class Sport:
    key: str  # Odds API sport_key
    title: str  # Odds API sport_title
    page_format: str  # how the OCR'd book shows prices: american | decimal | fractional
    draw: bool  # a 3-way h2h market (soccer)
    participants: tuple[Participant, ...]
    events: int


def _teams(rows: str) -> tuple[Participant, ...]:
    return tuple(Participant(*(c.strip() for c in row.split("|")))
                 for row in rows.strip().splitlines())


SPORTS: tuple[Sport, ...] = (
    Sport("basketball_nba", "NBA", "american", False, _teams("""
        Boston Celtics|Boston|Celtics|BOS
        Los Angeles Lakers|LA|Lakers|LAL
        Golden State Warriors|Golden State|Warriors|GSW
        Milwaukee Bucks|Milwaukee|Bucks|MIL
        Denver Nuggets|Denver|Nuggets|DEN
        Phoenix Suns|Phoenix|Suns|PHX
        Miami Heat|Miami|Heat|MIA
        New York Knicks|New York|Knicks|NYK
        Dallas Mavericks|Dallas|Mavericks|DAL
        Philadelphia 76ers|Philadelphia|76ers|PHI
        Chicago Bulls|Chicago|Bulls|CHI
        Toronto Raptors|Toronto|Raptors|TOR
        Sacramento Kings|Sacramento|Kings|SAC
        Cleveland Cavaliers|Cleveland|Cavaliers|CLE
        Memphis Grizzlies|Memphis|Grizzlies|MEM
        Atlanta Hawks|Atlanta|Hawks|ATL"""), 8),
    Sport("icehockey_nhl", "NHL", "american", False, _teams("""
        Toronto Maple Leafs|Toronto|Maple Leafs|TOR
        Montreal Canadiens|Montreal|Canadiens|MTL
        Boston Bruins|Boston|Bruins|BOS
        New York Rangers|NY Rangers|Rangers|NYR
        Edmonton Oilers|Edmonton|Oilers|EDM
        Colorado Avalanche|Colorado|Avalanche|COL
        Vegas Golden Knights|Vegas|Golden Knights|VGK
        Tampa Bay Lightning|Tampa Bay|Lightning|TBL
        Dallas Stars|Dallas|Stars|DAL
        Florida Panthers|Florida|Panthers|FLA
        Vancouver Canucks|Vancouver|Canucks|VAN
        Winnipeg Jets|Winnipeg|Jets|WPG"""), 6),
    Sport("americanfootball_nfl", "NFL", "american", False, _teams("""
        Kansas City Chiefs|Kansas City|Chiefs|KC
        Buffalo Bills|Buffalo|Bills|BUF
        Philadelphia Eagles|Philadelphia|Eagles|PHI
        San Francisco 49ers|San Francisco|49ers|SF
        Dallas Cowboys|Dallas|Cowboys|DAL
        Baltimore Ravens|Baltimore|Ravens|BAL
        Detroit Lions|Detroit|Lions|DET
        Green Bay Packers|Green Bay|Packers|GB
        Miami Dolphins|Miami|Dolphins|MIA
        Cincinnati Bengals|Cincinnati|Bengals|CIN
        Pittsburgh Steelers|Pittsburgh|Steelers|PIT
        Seattle Seahawks|Seattle|Seahawks|SEA"""), 6),
    Sport("soccer_epl", "EPL", "decimal", True, _teams("""
        Arsenal|Arsenal|Gunners|ARS
        Chelsea|Chelsea|Blues|CHE
        Liverpool|Liverpool|Reds|LIV
        Manchester City|Man City|Citizens|MCI
        Manchester United|Man United|Red Devils|MUN
        Tottenham Hotspur|Tottenham|Spurs|TOT
        Newcastle United|Newcastle|Magpies|NEW
        Aston Villa|Aston Villa|Villans|AVL
        Brighton and Hove Albion|Brighton|Seagulls|BHA
        West Ham United|West Ham|Hammers|WHU
        Everton|Everton|Toffees|EVE
        Brentford|Brentford|Bees|BRE
        Fulham|Fulham|Cottagers|FUL
        Wolverhampton Wanderers|Wolves|Wolves|WOL
        Crystal Palace|Palace|Eagles|CRY
        Nottingham Forest|Forest|Forest|NFO"""), 8),
    Sport("mma_mixed_martial_arts", "MMA", "fractional", False, _teams("""
        Marco Alvarez|Alvarez|M. Alvarez|ALV
        Dmitri Volkov|Volkov|D. Volkov|VOL
        Kenji Tanaka|Tanaka|K. Tanaka|TAN
        Luis Moreno|Moreno|L. Moreno|MOR
        Samuel Okafor|Okafor|S. Okafor|OKA
        Erik Lindqvist|Lindqvist|E. Lindqvist|LIN
        Rafael Costa|Costa|R. Costa|COS
        Tomasz Nowak|Nowak|T. Nowak|NOW
        Jamal Carter|Carter|J. Carter|CAR
        Aleksandr Petrov|Petrov|A. Petrov|PET
        Diego Herrera|Herrera|D. Herrera|HER
        Connor Walsh|Walsh|C. Walsh|WAL"""), 6),
)


@dataclass(frozen=True)
class Price:
    """One price in every format; `fraction` only when the book shows fractional odds."""

    decimal: float
    american: int
    fraction: tuple[int, int] | None = None

    def text(self, fmt: str) -> str:
        """As a book shows it: +150 / -110, 2.50, 6/4."""
        if fmt == "american":
            return f"{self.american:+d}"
        if fmt == "decimal":
            return f"{self.decimal:.2f}"
        if fmt == "fractional":
            n, d = self.fraction or _to_fraction(self.decimal)
            return f"{n}/{d}"
        raise ValueError(f"unknown odds format {fmt!r}")


@dataclass(frozen=True)
class Outcome:
    name: str  # canonical participant name, or "Draw"
    price: Price


@dataclass(frozen=True)
class Event:
    id: str
    sport: Sport
    commence_ms: int
    home: Participant
    away: Participant
    prices: dict[str, tuple[Outcome, ...]] = field(hash=False, compare=False)

    @property
    def commence_time(self) -> str:
        return _iso(self.commence_ms)

    def price(self, book: str, outcome: str) -> Price:
        for o in self.prices[book]:
            if o.name == outcome:
                return o.price
        raise KeyError(f"{self.id}: {book} has no outcome {outcome!r}")

    def outcome_names(self) -> tuple[str, ...]:
        names = (self.home.canonical, self.away.canonical)
        return names + ("Draw",) if self.sport.draw else names

    def to_odds_api(self, odds_format: str = "decimal", last_update_ms: int | None = None,
                    books: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The Odds API v4 event (h2h market only) with every (or the given) bookmaker."""
        stamp = _iso(last_update_ms if last_update_ms is not None else self.commence_ms - 6 * HOUR_MS)
        bookmakers = []
        for key, title in BOOKMAKERS:
            if books is not None and key not in books:
                continue
            outcomes = [{"name": o.name, "price": o.price.american if odds_format == "american"
                         else o.price.decimal} for o in self.prices[key]]
            bookmakers.append({"key": key, "title": title, "last_update": stamp, "markets": [
                {"key": "h2h", "last_update": stamp, "outcomes": outcomes}]})
        return {"id": self.id, "sport_key": self.sport.key, "sport_title": self.sport.title,
                "commence_time": self.commence_time, "home_team": self.home.canonical,
                "away_team": self.away.canonical, "bookmakers": bookmakers}


@dataclass(frozen=True)
class Boost:
    """The OCR'd book's boosted price on one outcome (shown on a promo card)."""

    event_id: str
    sport_key: str
    outcome: str  # canonical
    was: Price
    now: Price


class OddsModel:
    """Every event of every sport, deterministic in (seed, anchor_ms)."""

    def __init__(self, seed: int = 7, anchor_ms: int = 1_767_225_600_000) -> None:
        self.seed = seed
        self.anchor_ms = anchor_ms - anchor_ms % HOUR_MS
        self._events = tuple(e for sport in SPORTS for e in self._sport_events(sport))
        self._boosts = self._make_boosts()

    def sports(self) -> tuple[Sport, ...]:
        return SPORTS

    def sport(self, key: str) -> Sport:
        for s in SPORTS:
            if s.key == key:
                return s
        raise KeyError(key)

    def events(self, sport_key: str | None = None) -> tuple[Event, ...]:
        return tuple(e for e in self._events if sport_key is None or e.sport.key == sport_key)

    def boosts(self, sport_key: str | None = None) -> tuple[Boost, ...]:
        return tuple(b for b in self._boosts if sport_key is None or b.sport_key == sport_key)

    def display_name(self, p: Participant) -> str:
        """How the OCR'd book writes this participant (a fixed, seeded style per name)."""
        style = _rng(self.seed, "style", p.canonical).randrange(6)
        if style == 0 or not p.nickname:
            return p.canonical
        if style == 1:
            return p.nickname
        if style == 2:
            return p.city
        if style == 3:
            return f"{p.abbr} {p.nickname}"
        if style == 4:
            return p.canonical.upper()
        return p.nickname.upper()

    def _sport_events(self, sport: Sport) -> list[Event]:
        rng = _rng(self.seed, "events", sport.key)
        teams = list(sport.participants)
        rng.shuffle(teams)
        out = []
        for i in range(sport.events):
            home, away = teams[2 * i], teams[2 * i + 1]
            start = self.anchor_ms + (2 + i * 3 + rng.randrange(3)) * HOUR_MS + rng.choice((0, 30)) * 60_000
            eid = hashlib.sha1(f"{self.seed}:{sport.key}:{home.canonical}:{away.canonical}:{start}"
                               .encode()).hexdigest()[:32]
            p_home = rng.uniform(0.18, 0.82)
            if sport.draw:
                p_draw = rng.uniform(0.2, 0.3)
                probs = {home.canonical: p_home * (1 - p_draw), away.canonical: (1 - p_home) * (1 - p_draw),
                         "Draw": p_draw}
            else:
                probs = {home.canonical: p_home, away.canonical: 1 - p_home}
            prices = {}
            for book, _title in BOOKMAKERS:
                brng = _rng(self.seed, "price", eid, book)
                margin = brng.uniform(1.03, 1.08)
                fmt = sport.page_format if book == OCR_BOOK else (
                    "decimal" if book == "pinnacle" or sport.draw else "american")
                prices[book] = tuple(
                    Outcome(name, _price(p * margin * brng.uniform(0.98, 1.02), fmt))
                    for name, p in probs.items())
            out.append(Event(eid, sport, start, home, away, prices))
        return out

    def _make_boosts(self) -> tuple[Boost, ...]:
        boosts = []
        for sport in SPORTS:
            rng = _rng(self.seed, "boosts", sport.key)
            events = self.events(sport.key)
            for ev in rng.sample(list(events), 2):
                name = rng.choice((ev.home.canonical, ev.away.canonical))
                was = ev.price(OCR_BOOK, name)
                now = _price(1 / ((was.decimal - 1) * rng.uniform(1.15, 1.4) + 1), sport.page_format)
                if now.decimal <= was.decimal:
                    now = _price(1 / (was.decimal + 0.3), sport.page_format)
                boosts.append(Boost(ev.id, sport.key, name, was, now))
        return tuple(boosts)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _price(prob: float, fmt: str) -> Price:
    """The price for an implied probability, rounded to the format's ladder."""
    prob = min(max(prob, 0.02), 0.97)
    dec = 1 / prob
    if fmt == "american":
        american = round(100 * (dec - 1) / 5) * 5 if dec >= 2 else -round(100 / (dec - 1) / 5) * 5
        if -100 < american < 100:
            american = 100
        return Price(_american_to_decimal(american), american)
    if fmt == "fractional":
        frac = min(FRACTION_LADDER, key=lambda f: abs(float(f) + 1 - dec))
        d = round(float(frac) + 1, 2)
        return Price(d, _decimal_to_american(d), (frac.numerator, frac.denominator))
    d = max(1.01, round(dec, 2))
    return Price(d, _decimal_to_american(d))


def _american_to_decimal(a: int) -> float:
    return round(1 + a / 100, 2) if a > 0 else round(1 + 100 / -a, 2)


def _decimal_to_american(d: float) -> int:
    return round((d - 1) * 100) if d >= 2 else -round(100 / (d - 1))


def _to_fraction(d: float) -> tuple[int, int]:
    f = Fraction(d - 1).limit_denominator(100)
    return f.numerator, f.denominator


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
