"""Name variants are matched, near misses rejected, ambiguity listed, never forced."""

from __future__ import annotations

import pandas as pd
import pytest

from workers.arb.matching import match
from workers.arb.names import Resolver, load_aliases, normalise

T = pd.Timestamp("2026-11-25T04:30Z")
API = pd.DataFrame([
    {"event_id": "nba1", "sport": "basketball_nba", "home": "Chicago Bulls",
     "away": "Cleveland Cavaliers", "commence": T + pd.Timedelta(minutes=10)},
    {"event_id": "epl1", "sport": "soccer_epl", "home": "Arsenal", "away": "Chelsea", "commence": T},
    {"event_id": "nhl1", "sport": "icehockey_nhl", "home": "Dallas Stars", "away": "Boston Bruins",
     "commence": T},
])


def ocr(*markets: tuple[int, str, list[str], pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame([{"market_id": m, "sport": s, "commence": t, "name": n}
                         for m, s, names, t in markets for n in names])


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(load_aliases())


def test_normalise() -> None:
    assert normalise("  GSW  Warriors! ") == "gsw warriors"
    assert normalise("Brighton & Hove Albion") == "brighton and hove albion"
    assert normalise("A. PETROV") == "a petrov"


@pytest.mark.parametrize("names", [
    ["CAVALIERS", "Bulls"], ["Cleveland", "CHI Bulls"], ["Cleveland Cavaliers", "Chicago Bulls"],
    ["CLE Cavaliers", "Chicago"], ["Cavaliars", "Chicagp Bulls"],  # OCR noise
], ids=lambda n: "+".join(n))
def test_name_variants_are_matched(resolver: Resolver, names: list[str]) -> None:
    matched, unmatched = match(ocr((1, "basketball_nba", names, T)), API, resolver)
    assert unmatched.empty, unmatched.to_dict("records")
    assert list(matched["event_id"]) == ["nba1"] and matched["score"].iloc[0] > 80


def test_three_way_market_matches_with_draw(resolver: Resolver) -> None:
    matched, _ = match(ocr((1, "soccer_epl", ["Gunners", "Draw", "CHELSEA"], T)), API, resolver)
    assert list(matched["event_id"]) == ["epl1"]


@pytest.mark.parametrize(("market", "reason"), [
    ((1, "basketball_nba", ["Clippers", "Bulls"], T), "unknown: 'Clippers'"),
    ((1, "basketball_nba", ["Cavaliers", "Bulls"], T + pd.Timedelta(hours=5)), "time window"),
    ((1, "icehockey_nhl", ["Dallas", "Bruins"], T + pd.Timedelta(hours=3)), "time window"),
    ((1, "basketball_nba", ["Bulls", "Chicago"], T), "need two different participants"),
    ((1, "basketball_nba", ["Celtics", "Bulls"], T), "no event with these participants"),
], ids=["unknown-team", "too-late", "nhl-too-late", "same-team-twice", "wrong-opponent"])
def test_near_misses_are_rejected_with_a_reason(resolver: Resolver, market: tuple, reason: str) -> None:
    matched, unmatched = match(ocr(market), API, resolver)
    assert matched.empty
    assert reason in unmatched["reason"].iloc[0]


def test_several_fitting_events_are_ambiguous_not_forced(resolver: Resolver) -> None:
    twice = pd.concat([API, API.iloc[[0]].assign(event_id="nba2",
                                                commence=T - pd.Timedelta(minutes=20))])
    matched, unmatched = match(ocr((1, "basketball_nba", ["Cavaliers", "Bulls"], T)), twice, resolver)
    assert matched.empty and unmatched["reason"].iloc[0].startswith("ambiguous")


def test_an_alias_shared_by_two_teams_is_ambiguous() -> None:
    r = Resolver({"x": {"New York Rangers": ["New York"], "New York Islanders": ["New York"]}})
    assert r.resolve("x", "New York").canonical is None
    assert "ambiguous" in r.resolve("x", "New York").reason
