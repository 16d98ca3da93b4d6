"""workers/sandbox/odds_model.py and sportsbook.py: seeded events every feed can share, and
one book's page of them with its ground truth."""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest

from workers.sandbox.odds_model import BOOKMAKERS, OCR_BOOK, OddsModel
from workers.sandbox.server import SandboxHandle, running_sandbox

ANCHOR = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_same_seed_and_anchor_give_the_same_events_and_prices() -> None:
    a, b = OddsModel(7, ANCHOR), OddsModel(7, ANCHOR)
    assert [e.to_odds_api() for e in a.events()] == [e.to_odds_api() for e in b.events()]
    assert a.boosts() == b.boosts()
    other = OddsModel(8, ANCHOR)
    assert [e.id for e in a.events()] != [e.id for e in other.events()]


def test_events_carry_canonical_names_and_sane_prices_for_every_book() -> None:
    model = OddsModel(11, ANCHOR)
    events = model.events()
    assert {e.sport.key for e in events} == {"basketball_nba", "icehockey_nhl", "americanfootball_nfl",
                                             "soccer_epl", "mma_mixed_martial_arts"}
    for e in events:
        assert e.home != e.away and e.commence_ms > ANCHOR
        for book, _title in BOOKMAKERS:
            total = sum(1 / e.price(book, n).decimal for n in e.outcome_names())
            assert 0.97 < total < 1.2, (e.id, book, total)
    soccer = model.events("soccer_epl")[0]
    assert soccer.outcome_names()[-1] == "Draw"
    for b in model.boosts():
        assert b.now.decimal > b.was.decimal


def test_an_event_has_the_odds_api_v4_shape() -> None:
    ev = OddsModel(7, ANCHOR).events("soccer_epl")[0]
    doc = ev.to_odds_api(odds_format="american")
    assert set(doc) == {"id", "sport_key", "sport_title", "commence_time", "home_team", "away_team", "bookmakers"}
    assert doc["commence_time"].endswith("Z") and doc["sport_title"] == "EPL"
    assert [b["key"] for b in doc["bookmakers"]] == [k for k, _ in BOOKMAKERS]
    h2h = doc["bookmakers"][0]["markets"][0]
    assert h2h["key"] == "h2h" and {o["name"] for o in h2h["outcomes"]} == {ev.home.canonical, ev.away.canonical, "Draw"}
    assert all(isinstance(o["price"], int) for o in h2h["outcomes"])


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=5, history_minutes=1) as handle:
        yield handle


def test_each_sport_page_shows_the_truth_in_its_format(sb: SandboxHandle) -> None:
    truth = httpx.get(f"{sb.http_url}/_sandbox/sportsbook/truth", timeout=10).json()
    assert truth["book"] == OCR_BOOK and len(truth["sports"]) == 5
    formats = {s["key"]: s["format"] for s in truth["sports"]}
    assert formats["basketball_nba"] == "american" and formats["soccer_epl"] == "decimal"
    assert formats["mma_mixed_martial_arts"] == "fractional"
    styles = set()
    for sport in truth["sports"]:
        page = httpx.get(f"{sb.http_url}{sport['path']}", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        body = html.unescape(page.text)
        for ev in sport["events"]:
            for o in ev["outcomes"]:
                assert f'<span class="team">{o["shown"]}</span><span class="odds">{o["odds"]}</span>' in body
                styles.add("same" if o["shown"] == o["name"] else "upper" if o["shown"].isupper() else "other")
        for b in sport["boosts"]:
            assert f"was {b['was']}" in body and f"now {b['now']}" in body
    assert styles == {"same", "upper", "other"}  # names in varied styles


def test_lobby_links_every_sport_and_an_unknown_sport_is_404(sb: SandboxHandle) -> None:
    lobby = httpx.get(f"{sb.http_url}/sportsbook", timeout=10)
    assert lobby.status_code == 200 and 'href="/sportsbook/soccer_epl"' in lobby.text
    assert httpx.get(f"{sb.http_url}/sportsbook/curling", timeout=10).status_code == 404
