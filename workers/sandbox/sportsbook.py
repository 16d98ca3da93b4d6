"""A sportsbook web page (feed module): one book's ("SandBook", the OCR'd book) view of the odds
model's events, for the emulator builder to screenshot and OCR.

GET /sportsbook                 the lobby: links to every sport page, today's boosts
GET /sportsbook/{sport_key}     one sport: promo/boost cards, then each event's moneyline
                                (American for NBA/NHL/NFL, decimal for EPL with a Draw,
                                fractional for MMA), names in the book's own varied styles
GET /_sandbox/sportsbook/truth[?sport=KEY]   the ground truth (loopback only): what each
                                page shows, with canonical names and exact prices

Events are OddsModel(seed, anchor = start of the current UTC day) so the same seed shows the
same events and prices all day (and a later odds.py feed can serve them in v4 format).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from workers.sandbox._context import Context, Feed
from workers.sandbox._control import is_loopback
from workers.sandbox.odds_model import OCR_BOOK, SPORTS, Event, OddsModel, Sport

DAY_MS = 86_400_000
BOOK_TITLE = "SandBook"


def feed(ctx: Context) -> Feed:
    """The sportsbook pages and their ground truth."""
    now = ctx.now_ms()
    book = Sportsbook(OddsModel(ctx.settings.seed, now - now % DAY_MS))
    routes = [
        Route("/sportsbook", book.lobby),
        Route("/sportsbook/{sport}", book.page),
        Route("/_sandbox/sportsbook/truth", book.truth),
    ]
    return Feed("sportsbook", routes)


class Sportsbook:
    def __init__(self, model: OddsModel) -> None:
        self.model = model

    async def lobby(self, _request: Request) -> Response:
        links = "".join(f'<li><a href="/sportsbook/{s.key}">{s.title}</a> '
                        f'<span class="n">{s.events} events</span></li>' for s in self.model.sports())
        return HTMLResponse(_page("Lobby", f'<ul class="lobby">{links}</ul>'
                                  + self._boost_cards(None)))

    async def page(self, request: Request) -> Response:
        key = request.path_params["sport"]
        try:
            sport = self.model.sport(key)
        except KeyError:
            return HTMLResponse(_page("Not found", f"<p>No such sport: {html.escape(key)}</p>"),
                                status_code=404)
        return HTMLResponse(_page(sport.title, self.render_sport(sport)))

    async def truth(self, request: Request) -> Response:
        if not is_loopback(request.client.host if request.client else ""):
            return JSONResponse({"error": "loopback only"}, status_code=403)
        key = request.query_params.get("sport")
        return JSONResponse(self.truth_data(key))

    def render_sport(self, sport: Sport) -> str:
        events = "".join(self._event_card(sport, ev) for ev in self.model.events(sport.key))
        return (f'<h1>{sport.title} <span class="sub">Moneyline</span></h1>'
                + self._boost_cards(sport.key)
                + f'<section class="events">{events}</section>')

    def _event_card(self, sport: Sport, ev: Event) -> str:
        parts = {ev.home.canonical: ev.home, ev.away.canonical: ev.away}
        names = [("Draw" if n == "Draw" else self.model.display_name(parts[n]), n)
                 for n in _page_order(ev)]
        rows = "".join(
            f'<div class="row" data-outcome="{html.escape(canonical)}">'
            f'<span class="team">{html.escape(shown)}</span>'
            f'<span class="odds">{ev.price(OCR_BOOK, canonical).text(sport.page_format)}</span></div>'
            for shown, canonical in names)
        return (f'<article class="event" data-event="{ev.id}">'
                f'<div class="when">{_when(ev.commence_ms)}</div>{rows}</article>')

    def _boost_cards(self, sport_key: str | None) -> str:
        cards = []
        for b in self.model.boosts(sport_key):
            fmt = self.model.sport(b.sport_key).page_format
            ev = next(e for e in self.model.events(b.sport_key) if e.id == b.event_id)
            who = ev.home if ev.home.canonical == b.outcome else ev.away
            cards.append(
                f'<div class="boost" data-event="{b.event_id}"><div class="tag">ODDS BOOST</div>'
                f'<div class="sel">{html.escape(self.model.display_name(who))} to win</div>'
                f'<div class="prices"><span class="was">was {b.was.text(fmt)}</span>'
                f'<span class="now">now {b.now.text(fmt)}</span></div></div>')
        return f'<section class="boosts">{"".join(cards)}</section>' if cards else ""

    def truth_data(self, sport_key: str | None = None) -> dict[str, Any]:
        """What the pages show: per sport its format, events (display names, canonical names,
        price texts) and boosts."""
        sports = []
        for sport in self.model.sports():
            if sport_key is not None and sport.key != sport_key:
                continue
            events = []
            for ev in self.model.events(sport.key):
                outcomes = []
                for name in _page_order(ev):
                    p = ev.price(OCR_BOOK, name)
                    part = ev.home if name == ev.home.canonical else ev.away
                    outcomes.append({"name": name, "shown": "Draw" if name == "Draw"
                                     else self.model.display_name(part),
                                     "odds": p.text(sport.page_format), "decimal": p.decimal,
                                     "american": p.american})
                events.append({"id": ev.id, "commence_time": ev.commence_time,
                               "home_team": ev.home.canonical, "away_team": ev.away.canonical,
                               "outcomes": outcomes})
            boosts = []
            for b in self.model.boosts(sport.key):
                ev = next(e for e in self.model.events(sport.key) if e.id == b.event_id)
                who = ev.home if ev.home.canonical == b.outcome else ev.away
                boosts.append({"event_id": b.event_id, "outcome": b.outcome,
                               "shown": self.model.display_name(who),
                               "was": b.was.text(sport.page_format),
                               "now": b.now.text(sport.page_format)})
            sports.append({"key": sport.key, "title": sport.title, "format": sport.page_format,
                           "path": f"/sportsbook/{sport.key}", "events": events, "boosts": boosts})
        return {"book": OCR_BOOK, "title": BOOK_TITLE, "seed": self.model.seed,
                "anchor_ms": self.model.anchor_ms, "sports": sports}


def _page_order(ev: Event) -> tuple[str, ...]:
    """Outcomes top to bottom: away then home (US style); soccer home, Draw, away."""
    if ev.sport.draw:
        return (ev.home.canonical, "Draw", ev.away.canonical)
    return (ev.away.canonical, ev.home.canonical)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%a %H:%M").upper()


CSS = """
* { box-sizing: border-box; }
body { margin: 0; font-family: "DejaVu Sans", sans-serif; background: #f4f6f9; color: #111; }
header { background: #0b3d2e; color: #fff; padding: 14px 24px; font-size: 24px; font-weight: bold; }
nav { background: #e3e9ef; padding: 10px 24px; font-size: 16px; }
nav a { color: #0b3d2e; margin-right: 22px; text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 900px; }
h1 { font-size: 26px; margin: 18px 0 12px; }
h1 .sub { font-weight: normal; color: #333; font-size: 20px; margin-left: 12px; }
.boosts { display: flex; flex-wrap: wrap; gap: 16px; margin-bottom: 20px; }
.boost { background: #fff8e1; border: 1px solid #f0dca0; border-radius: 10px; padding: 12px 16px;
         width: 400px; }
.boost .tag { font-size: 15px; font-weight: bold; color: #7a4b00; letter-spacing: 1px; }
.boost .sel { font-size: 20px; margin: 8px 0; }
.boost .prices { font-size: 20px; }
.boost .was { color: #444; margin-right: 40px; }
.boost .now { font-weight: bold; }
.event { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; margin: 0 0 14px;
         padding: 10px 16px; }
.when { font-size: 15px; color: #444; margin-bottom: 6px; }
.row { display: flex; justify-content: space-between; align-items: center; padding: 6px 0; }
.team { font-size: 21px; }
.odds { font-size: 21px; font-weight: bold; min-width: 110px; text-align: center;
        background: #eef3f8; border: 1px solid #d5dee8; border-radius: 6px; padding: 6px 10px; }
.lobby { font-size: 20px; line-height: 1.8; }
.lobby .n { color: #555; font-size: 16px; }
"""


def _page(title: str, body: str) -> str:
    nav = "".join(f'<a href="/sportsbook/{s.key}">{s.title}</a>' for s in SPORTS)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{BOOK_TITLE} - {title}</title>"
            f"<style>{CSS}</style></head><body><header>{BOOK_TITLE}</header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>")
