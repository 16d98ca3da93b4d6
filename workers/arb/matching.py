"""Match a book's markets (OCR'd rows, one row per outcome) to odds-API events (pandas).

An OCR market matches an API event when the sport is the same, its participants resolve
(names.Resolver) to the event's two teams, in either order, and the commence times are within
`window`. Each match has a score: the mean name score minus up to 10 points for the time
offset. A market with no candidate, an unresolved name, or more than one candidate event is
listed in the unmatched frame with the reason, never forced.

    ocr:  market_id, sport, commence (UTC datetime, NaT if unknown), name   (one row per outcome)
    api:  event_id, sport, home, away, commence
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

import numpy as np
import pandas as pd

from workers.arb.names import DRAW, Resolver

MATCH_COLUMNS = ["market_id", "event_id", "sport", "home", "away", "ocr_names", "api_commence",
                 "ocr_commence", "time_offset_min", "name_score", "score"]
UNMATCHED_COLUMNS = ["market_id", "sport", "ocr_names", "ocr_commence", "reason"]


def match(ocr: pd.DataFrame, api: pd.DataFrame, resolver: Resolver,
          window: pd.Timedelta = pd.Timedelta(minutes=90)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(matches, unmatched): one row per OCR market in exactly one of them.

    Names are resolved once per distinct (sport, name); the rest works on integer codes
    (pandas' Arrow strings are slow to shuffle), so 100,000 rows take well under a second."""
    if ocr.empty:
        return pd.DataFrame(columns=MATCH_COLUMNS), pd.DataFrame(columns=UNMATCHED_COLUMNS)
    ocr = ocr.sort_values("market_id", kind="stable")
    sport_code, sports = pd.factorize(ocr["sport"].to_numpy(dtype=object))
    name_code, names = pd.factorize(ocr["name"].to_numpy(dtype=object))
    pair_code, pairs = pd.factorize(sport_code.astype(np.int64) * (len(names) + 1) + name_code)
    canon_ids: dict[str, int] = {DRAW: 0}
    p_canon = np.empty(len(pairs), dtype=np.int64)
    p_score = np.empty(len(pairs), dtype=np.float64)
    p_reason: list[str] = []
    for i, pair in enumerate(pairs):
        r = resolver.resolve(str(sports[pair // (len(names) + 1)]), str(names[pair % (len(names) + 1)]))
        p_canon[i] = -1 if r.canonical is None else canon_ids.setdefault(r.canonical, len(canon_ids))
        p_score[i] = r.score
        p_reason.append(r.reason)
    canon = p_canon[pair_code]
    score = p_score[pair_code]
    mids = ocr["market_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, mids[1:] != mids[:-1]])
    ends = np.r_[starts[1:], len(mids)]
    row_names = names[name_code]
    row_sport = sports[sport_code]
    commence = _ns(ocr["commence"])
    ev_ids = api["event_id"].tolist()
    homes, aways = api["home"].tolist(), api["away"].tolist()
    api_ns = _ns(api["commence"]).tolist()
    api_index: dict[tuple[str, int, int], tuple[list[int], list[int]]] = {}
    for j in sorted(range(len(ev_ids)), key=api_ns.__getitem__):
        hi = canon_ids.get(homes[j], -2 - 2 * j)
        ai = canon_ids.get(aways[j], -3 - 2 * j)
        times, idx = api_index.setdefault((api["sport"].iat[j], min(hi, ai), max(hi, ai)), ([], []))
        times.append(api_ns[j])
        idx.append(j)
    win = int(window.total_seconds() * 1e9)
    win_min = window.total_seconds() / 60
    ok_rows: list[tuple[Any, ...]] = []
    bad_rows: list[tuple[Any, ...]] = []
    commence_l = commence.tolist()
    for s0, e0 in zip(starts.tolist(), ends.tolist()):
        mid, sp, when = mids[s0], row_sport[s0], commence_l[s0]
        label = " | ".join(row_names[s0:e0])
        c = canon[s0:e0]
        reason = ""
        bad = np.flatnonzero(c < 0)
        teams = c[c > 0]
        if len(bad):
            reason = p_reason[pair_code[s0 + bad[0]]]
        elif len(teams) != 2 or teams[0] == teams[1]:
            reason = f"need two different participants, resolved {len(set(teams.tolist()))}"
        elif when == _NAT:
            reason = "no commence time read"
        if not reason:
            times, idx = api_index.get((sp, int(teams.min()), int(teams.max())), ([], []))
            lo, hi = bisect_left(times, when - win), bisect_right(times, when + win)
            fits = idx[lo:hi]
            if not fits:
                reason = "no event with these participants within the time window"
            elif len(fits) > 1:
                reason = "ambiguous: several events fit: " + ", ".join(str(ev_ids[j]) for j in fits)
            else:
                j = fits[0]
                off = abs(api_ns[j] - when) / 60e9
                nscore = float(score[s0:e0][c > 0].mean())
                ok_rows.append((mid, ev_ids[j], sp, homes[j], aways[j], label, api_ns[j], when,
                                round(off, 1), round(nscore, 2), round(nscore - 10 * off / win_min, 1)))
                continue
        bad_rows.append((mid, sp, label, when, reason))
    matched = pd.DataFrame(ok_rows, columns=MATCH_COLUMNS)
    unmatched = pd.DataFrame(bad_rows, columns=UNMATCHED_COLUMNS)
    for frame, cols in ((matched, ["api_commence", "ocr_commence"]), (unmatched, ["ocr_commence"])):
        for col in cols:
            frame[col] = pd.to_datetime(frame[col].where(frame[col] != _NAT), unit="ns", utc=True)
    return matched, unmatched


_NAT = np.iinfo(np.int64).min


def _ns(col: pd.Series) -> np.ndarray:
    """UTC datetimes as int64 nanoseconds (NaT -> _NAT)."""
    return pd.to_datetime(col, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
