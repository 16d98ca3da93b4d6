"""dedup.py and gaps.py: bounded de-dup windows, gap resolution, bar completeness."""

from __future__ import annotations

import pytest

from workers.ingestor.dedup import BarWindow, TradeWindow
from workers.ingestor.gaps import BarTracker, Outcome, PendingGap, resolve, resolve_without_rest
from workers.ingestor.messages import BAR_MS, Trade

T0 = 1_795_000_000_000


def trade(i: int, ts: int) -> Trade:
    return Trade(str(i), "BTC-USDT", 1.0, 1.0, "buy", ts)


def test_window_admits_each_id_once_and_tracks_the_watermark() -> None:
    w = TradeWindow(1000)
    assert w.admit("1", T0) and w.admit("2", T0 + 5) and not w.admit("1", T0)
    assert (w.last_ts, w.last_id, len(w)) == (T0 + 5, "2", 2)


def test_window_memory_is_bounded_and_forgotten_ids_stay_duplicates() -> None:
    w = TradeWindow(1000)
    for i in range(5000):
        w.admit(str(i), T0 + i)
    assert len(w) == 1000 and w.floor_ts == T0 + 3999
    assert not w.admit("10", T0 + 10)  # forgotten, but older than the floor
    assert w.admit("new", T0 + 5000)


def test_window_restore_rebuilds_state_from_stored_rows() -> None:
    w = TradeWindow(1000)
    w.restore([(T0, "a"), (T0 + 1, "b")], T0 + 1, "b", floor_ts=T0)
    assert not w.admit("a", T0) and not w.admit("zz", T0 - 1) and w.admit("c", T0 + 2)
    assert (w.last_ts, w.last_id) == (T0 + 2, "c")


def test_bar_window_is_bounded() -> None:
    bars = BarWindow(10)
    assert all(bars.add(T0 + i * BAR_MS) for i in range(30))
    assert len(bars) == 10 and not bars.add(T0) and (T0 + 29 * BAR_MS) in bars


@pytest.mark.parametrize("rest, first_ws, expected", [
    ([trade(9, T0 + 900), trade(5, T0 + 500), trade(4, T0 + 400)], None, Outcome(True, None)),
    ([trade(9, T0 + 900), trade(5, T0 + 500)], None, Outcome(True, None)),
    ([trade(9, T0 + 900), trade(7, T0 + 700)], None, Outcome(True, (T0 + 500, T0 + 700))),
    ([trade(9, T0 + 900), trade(7, T0 + 700)], T0 + 600, Outcome(True, (T0 + 500, T0 + 600))),
    ([], T0 + 800, Outcome(True, (T0 + 500, T0 + 800))),
    ([], None, Outcome(False, None)),
], ids=["older-trade", "same-id", "gap-to-rest", "gap-to-stream", "rest-empty", "unknown"])
def test_resolve_records_only_what_rest_and_stream_cannot_cover(
        rest: list[Trade], first_ws: int | None, expected: Outcome) -> None:
    gap = PendingGap(T0 + 500, "5", "disconnect", first_ws_ts=first_ws)
    assert resolve(gap, rest) == expected


def test_resolve_without_rest_covers_up_to_the_first_pushed_trade() -> None:
    gap = PendingGap(T0, "1", "disconnect")
    assert resolve_without_rest(gap) == Outcome(False, None)
    gap.first_ws_ts = T0 + 5000
    assert resolve_without_rest(gap) == Outcome(True, (T0, T0 + 5000))


def test_reopen_keeps_the_start_and_forgets_the_resumed_stream() -> None:
    gap = PendingGap(T0, "1", "disconnect", first_ws_ts=T0 + 10, armed=True)
    gap.reopen("stall")
    gap.reopen("stall")
    assert (gap.start_ms, gap.reason, gap.first_ws_ts, gap.armed) == (
        T0, "disconnect; stall", None, False)


def test_bar_tracker_asks_rest_for_closed_bars_not_stored_after_the_grace() -> None:
    t = BarTracker()
    t.saw(T0, now=100.0)
    stored = {T0 - BAR_MS}
    assert t.complete_through == T0 - BAR_MS and t.due(stored, 100.0, 1.0, 100) is None
    t.saw(T0 + 3 * BAR_MS, now=200.0)  # three bars closed; none confirmed yet
    stored.add(T0)
    assert t.due(stored, 200.5, 1.0, 100) is None  # grace
    t.saw(T0 + 4 * BAR_MS, now=201.2)  # the next bar opens: bar 3 is not past its grace yet
    assert t.due(stored, 201.5, 1.0, 100) == (T0 + BAR_MS, T0 + 2 * BAR_MS)
    assert t.complete_through == T0
    stored.add(T0 + BAR_MS)  # REST had bar 1; bar 2 had no trades (absent)
    assert t.settle(T0 + BAR_MS, T0 + 2 * BAR_MS, stored, set()) == 1
    assert t.complete_through == T0 + 2 * BAR_MS
    assert t.due(stored, 300.0, 1.0, 100) == (T0 + 3 * BAR_MS, T0 + 3 * BAR_MS)


def test_bar_tracker_stops_at_a_bar_rest_still_shows_unconfirmed() -> None:
    t = BarTracker(complete_through=T0)
    t.saw(T0 + 5 * BAR_MS, now=0.0)
    assert t.settle(T0 + BAR_MS, T0 + 4 * BAR_MS, {T0 + BAR_MS}, {T0 + 2 * BAR_MS}) == 0
    assert t.complete_through == T0 + BAR_MS


def test_bar_tracker_caps_a_long_backfill() -> None:
    t = BarTracker(complete_through=T0)
    t.saw(T0 + 1000 * BAR_MS, now=0.0)
    assert t.due(set(), 10.0, 1.0, 10) == (T0 + 990 * BAR_MS, T0 + 999 * BAR_MS)
