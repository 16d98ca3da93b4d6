"""A/B against the incumbent (the registry's current model) on the same out-of-fold period.

The incumbent is the frozen model that is in production, with its own features and its own
enter threshold. It was trained on everything up to its `trained_through`, so its predictions
are honest only after that (plus the purge gap): comparing it in-sample would flatter it. The
shared period is therefore the candidate's out-of-fold bars after the incumbent's training
data ends; both arms trade exactly those bars at the same costs, and the promotion gate
(policies.trading.promotion_gate) asks Sharpe(candidate) >= Sharpe(incumbent), a positive
expectancy and >= 100 trades per arm there. Right after a promotion that period is short, so
the next candidates are kept, not promoted, until the incumbent has been tested on enough new
bars -- a model is replaced only on evidence. Without a usable incumbent the candidate is
judged alone on its whole out-of-fold period.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from policies.trading import ArmStats, GateSettings
from workers.retrain import _model
from workers.retrain._evaluate import Book, book_stats, simulate
from workers.retrain._outputs import iso
from workers.retrain._registry import Registry
from workers.retrain.config import BAR_MS, Settings

log = logging.getLogger(__name__)


@dataclass
class AB:
    """The arms of the comparison, for the gate and the report."""

    candidate: ArmStats
    incumbent: ArmStats | None
    doc: dict[str, Any]
    curves: dict[str, pd.Series] = field(default_factory=dict)
    blocker: str | None = None  # why no comparison is possible yet


def arm(stats: dict[str, Any]) -> ArmStats:
    return ArmStats(trades=int(stats["trades"]), sharpe=stats["sharpe"],
                    expectancy=float(stats["expectancy"]) if stats["expectancy"] is not None else 0.0)


def _arm_doc(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("trades", "sharpe", "sharpe_note", "expectancy", "win_rate", "max_drawdown", "total_return")
    return {k: stats[k] for k in keys}


def compare(frame: pd.DataFrame, oof_proba: np.ndarray, oof: np.ndarray, book: Book,
            settings: Settings, registry: Registry) -> AB:
    """Both arms on the shared period (or the candidate alone)."""
    gates: GateSettings = settings.gates
    ts = frame["ts"].to_numpy()
    lo, hi = int(ts[oof].min()), int(ts[oof].max())
    whole = book_stats(book, gates, lo, hi)
    entry = registry.current()
    why = ""
    artifact = None
    if entry is None:
        why = "no incumbent in the registry"
    else:
        try:
            artifact = _model.load(registry.model_path(entry))
        except _model.ArtifactError as exc:
            why = f"the incumbent {entry.get('id')} cannot be used ({exc})"
        else:
            missing = [f for f in artifact["features"] if f not in frame.columns]
            if missing:
                why = (f"the incumbent {entry.get('id')} needs features this build does not make "
                       f"({', '.join(missing[:5])})")
                artifact = None
    if artifact is None or entry is None:
        if entry is not None:
            log.warning("A/B: %s; judging the candidate alone", why)
        doc = {"incumbent": None, "method": "candidate alone", "note": why,
               "period": {"start": iso(lo), "end": iso(hi), "bars": whole["bars"]},
               "candidate": _arm_doc(whole), "incumbent_arm": None,
               "summary": f"{why}: the candidate is judged alone on its whole out-of-fold period "
                          f"({whole['trades']} trades)."}
        return AB(arm(whole), None, doc)
    through = int(artifact["trained_through_ms"])
    cutoff = through + settings.gap_bars * BAR_MS
    shared = oof & (ts > cutoff)
    base = {"incumbent": {"id": entry.get("id"), "trained_through": iso(through),
                          "enter": artifact["enter"], "promoted_at": entry.get("stored_at")},
            "method": "frozen incumbent vs out-of-fold candidate on the bars after the incumbent's "
                      "training data (+ purge gap)"}
    if not shared.any():
        empty = {"trades": 0, "sharpe": None, "sharpe_note": "no shared bars", "expectancy": None,
                 "win_rate": None, "max_drawdown": 0.0, "total_return": 0.0}
        doc = {**base, "period": {"start": None, "end": None, "bars": 0}, "candidate": empty,
               "incumbent_arm": empty,
               "summary": f"The incumbent {entry.get('id')} was trained through {iso(through)}: no "
                          "out-of-fold bar after that is out-of-sample for it yet, so the arms cannot "
                          "be compared."}
        blocker = (f"the incumbent {entry.get('id')} was trained through {iso(through)}, after every "
                   "out-of-fold bar: no shared out-of-sample period to compare on yet")
        return AB(ArmStats(0, None, 0.0), ArmStats(0, None, 0.0), doc, blocker=blocker)
    cols = list(artifact["features"])
    inc_proba = np.full(len(frame), np.nan)
    inc_proba[shared] = _model.predict_up(artifact, frame.loc[shared, cols].to_numpy(np.float64))
    cost = settings.cost_per_side
    s_lo, s_hi = int(ts[shared].min()), int(ts[shared].max())
    inc_book = simulate(frame, inc_proba, shared, float(artifact["enter"]), cost)
    cand_book = simulate(frame, oof_proba, shared, settings.enter, cost)
    inc = book_stats(inc_book, gates, s_lo, s_hi)
    cand = book_stats(cand_book, gates, s_lo, s_hi)
    doc = {**base, "period": {"start": iso(s_lo), "end": iso(s_hi), "bars": cand["bars"]},
           "candidate": _arm_doc(cand), "incumbent_arm": _arm_doc(inc),
           "summary": f"On {cand['bars']} bars from {iso(s_lo)} to {iso(s_hi)} (after the incumbent "
                      f"{entry.get('id')}'s training data): candidate {cand['trades']} trades, Sharpe "
                      f"{_num(cand['sharpe'])}; incumbent {inc['trades']} trades, Sharpe {_num(inc['sharpe'])}."}
    curves = {"candidate": cand_book.portfolio(s_lo, s_hi), "incumbent": inc_book.portfolio(s_lo, s_hi)}
    return AB(arm(cand), arm(inc), doc, curves)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"
