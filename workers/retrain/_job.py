"""One retrain run: store -> bars -> features -> walk-forward -> control -> trades -> gates ->
A/B -> proofs -> registry. Returns the outcome; the CLI turns it into an exit code."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from policies.trading import (
    BARS_PER_YEAR_5M,
    Verdict,
    chance_allowance,
    leakage_gate,
    percentile,
    promotion_gate,
    regime_gate,
)
from workers.retrain import _model, _report
from workers.retrain._ab import AB, compare
from workers.retrain._bars import five_minute_bars
from workers.retrain._evaluate import Book, book_stats, classification, control_accuracy, simulate
from workers.retrain._features import WARMUP_BARS, ExtraFeatures, build_frame, timeline
from workers.retrain._folds import Fold, walk_forward
from workers.retrain._outputs import iso, walk_forward_csv, write_atomic, write_json
from workers.retrain._progress import Progress
from workers.retrain._registry import Registry
from workers.retrain._store import load
from workers.retrain.config import HORIZON_BARS, Settings
from workers.retrain.errors import NotEnoughHistory
from workers.sdk import Run

log = logging.getLogger(__name__)

SCHEMA = "proofwatch.retrain.metrics/1"
PROOFS = ("model.joblib", "metrics.json", "walk_forward.csv", "report.html")
SHARPE_CONVENTION = (
    f"Sharpe = mean / stdev of per-bar net returns (flat bars count as 0) x sqrt({BARS_PER_YEAR_5M:,}) "
    "(5-minute bars, 24/7, 365 days); several instruments form an equal-weight portfolio. Not "
    "reported below the minimum trade count. The sqrt scaling assumes independent returns; serial "
    "correlation can overstate it (Lo 2002).")
LABEL = ("up (1) if the next bar's return beats the round-trip cost, down (0) if it falls below "
         "minus the round-trip cost; bars in between (or before a missing bar) are not labelled, "
         "not trained on and not scored, but are traded")


@dataclass
class Outcome:
    """What the run decided."""

    exit_code: int
    verdict: str
    metrics: dict[str, Any]


def run(settings: Settings, pw: Run, extra: ExtraFeatures | None = None) -> Outcome:
    """The whole job. Raises NotEnoughHistory/DataError/RegistryError; a failing leakage or
    regime gate is an Outcome with exit code 1 (its proofs still written, except the model)."""
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    fits = settings.folds * (1 + settings.control_repeats) + 1
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with Progress(pw, settings.progress, fits) as progress, \
            threadpool_limits(limits=settings.threads, user_api="openmp"):
        progress.phase("load", f"reading {settings.data_dir}")
        snap = load(settings.data_dir, settings.instruments, settings.days, settings.registry_dir / "cache")
        bars, data = {}, {}
        for inst, d in snap.instruments.items():
            bars[inst], info = five_minute_bars(d)
            data[inst] = {**{k: v for k, v in d.info.items() if not k.endswith("_parts")}, **info}
        timings["load"] = time.monotonic() - t0
        longest = max(len(b) for b in bars.values())
        if longest < settings.min_bars:
            candles = sum(d["candles_1m"] for d in data.values())
            raise NotEnoughHistory(longest, settings.min_bars,
                                   f"5-minute bars, {longest * 5 / 60:.1f} h, from {candles} 1-minute "
                                   f"candles in {settings.data_dir}; need {settings.min_bars * 5 / 60:.0f} h: "
                                   "let the ingestor backfill more, or lower --min-bars")
        usable = {i: b for i, b in bars.items() if len(b) > WARMUP_BARS + 1}
        for inst in bars.keys() - usable.keys():
            data[inst]["excluded"] = f"{len(bars[inst])} bars, not more than the {WARMUP_BARS}-bar warm-up"
            log.warning("%s left out: %s", inst, data[inst]["excluded"])
        progress.phase("features", f"{sum(len(b) for b in bars.values())} bars of {len(bars)} instruments")
        frame, names = build_frame(usable, settings.round_trip, extra)
        X = frame[names].to_numpy(np.float64)
        y = frame["label"].to_numpy()
        ts = frame["ts"].to_numpy()
        folds = _folds(settings, timeline(frame))
        timings["features"] = time.monotonic() - t0 - sum(timings.values())
        progress.phase("walk-forward", f"{len(folds)} folds, {len(frame)} rows, {len(names)} features")
        n = len(folds)
        wf = _model.walk_forward(X, y, ts, folds, settings.model, settings.min_train_rows,
                                 lambda k: progress.fold("folds", k, n, f"fold {k} of {n} fitted"))
        progress.phase("control", "shuffled-label control")
        total_c = n * settings.control_repeats
        control = _model.shuffled_control(
            X, y, ts, folds, settings.model, settings.control_repeats, settings.min_train_rows,
            lambda k: progress.fold("control_folds", k, total_c, f"control fit {k} of {total_c}"))
        timings["walk_forward"] = time.monotonic() - t0 - sum(timings.values())
        progress.phase("backtest", "simulating out-of-fold trades")
        oof = wf.fold_of > 0
        book = simulate(frame, wf.proba, oof, settings.enter, settings.cost_per_side)
        m = _metrics(settings, frame, y, wf, control, folds, book, data, snap.source, snap.manifest_updated_at)
        verdicts = _run_gates(settings, frame, oof, m)
        failed = [v for v in verdicts if not v.passed]
        ab: AB | None = None
        registry = Registry(settings.registry_dir)
        if failed:
            m["gates"]["promotion"] = _verdict(Verdict("promotion", False, f"not evaluated: {failed[0].reason}"))
            m["status"], m["verdict"], m["promoted"] = "failed", failed[0].reason, False
        else:
            progress.phase("final", "fitting the model on every labelled bar")
            ab, model_doc = _final_model(settings, frame, X, y, names, wf.proba, oof, book, registry, m)
            progress.fitted(f"final model {model_doc['id']} fitted on {model_doc['trained_rows']} rows")
            m["model"] = model_doc
            promo = (promotion_gate(ab.candidate, ab.incumbent, settings.gates) if ab.blocker is None
                     else Verdict("promotion", False, f"kept, not promoted: {ab.blocker}"))
            if not settings.promote and promo.passed:
                promo = Verdict("promotion", False, f"kept, not promoted: --no-promote ({promo.reason})")
            m["gates"]["promotion"] = _verdict(promo)
            m["ab"] = ab.doc
            m["promoted"] = promo.passed
            m["status"] = "succeeded"
            m["verdict"] = _summary(m, promo)
        timings["evaluate"] = time.monotonic() - t0 - sum(timings.values())
        progress.phase("report", "writing metrics.json, walk_forward.csv, report.html")
        m["timings"] = timings
        _write_proofs(settings, m, book, frame, oof, ab, t0)
        if m["status"] == "succeeded" and settings.promote:
            progress.phase("registry", "promoting" if m["promoted"] else "keeping the candidate")
            files = [settings.out_dir / "model.joblib", settings.out_dir / "metrics.json"]
            stored = registry.record(files, m["model"]["registry_entry"], promoted=m["promoted"],
                                     verdict=m["verdict"], run_id=m["run_id"] or "",
                                     keep_candidates=settings.keep_candidates)
            log.info("registry: %s stored as %s", stored["id"], stored["path"])
        progress.finish(m["verdict"])
    return Outcome(1 if m["status"] == "failed" else 0, m["verdict"], m)


def _folds(settings: Settings, clock: np.ndarray) -> list[Fold]:
    """The walk-forward folds, or NotEnoughHistory saying how many bars they would need."""
    def folds_on(c: np.ndarray) -> list[Fold]:
        return walk_forward(c, folds=settings.folds, gap_bars=settings.gap_bars,
                            test_bars=settings.test_bars, train_bars=settings.train_bars)
    try:
        return folds_on(clock)
    except ValueError as exc:
        need = len(clock) + 1
        while True:
            try:
                folds_on(np.arange(need, dtype=np.int64))
                break
            except ValueError:
                need += 1
        raise NotEnoughHistory(len(clock), need, f"bars after the warm-up; {exc}") from None


def _verdict(v: Verdict) -> dict[str, Any]:
    return {"passed": v.passed, "reason": v.reason}


def _metrics(settings: Settings, frame: pd.DataFrame, y: np.ndarray, wf: _model.WalkForward,
             control: np.ndarray, folds: list[Fold], book: Book, data: dict[str, Any], source: str,
             manifest_at: str | None) -> dict[str, Any]:
    gates = settings.gates
    ts = frame["ts"].to_numpy()
    inst = frame["inst"].to_numpy()
    vol = frame["regime_vol"].to_numpy()
    oof = wf.fold_of > 0
    fold_docs = []
    for i, f in enumerate(folds):
        rows = wf.fold_of == f.k
        fvol = vol[rows & ~np.isnan(vol)]
        fold_docs.append({
            **f.to_json(), "train_start": iso(f.train_start), "train_end": iso(f.train_end),
            "test_start": iso(f.test_start), "test_end": iso(f.test_end),
            "train_rows": wf.train_rows[i], "train_accuracy": wf.train_accuracy[i],
            "classification": classification(y[rows], wf.proba[rows]),
            "shuffled_accuracy": control_accuracy(y[rows], control[:, rows], inst[rows])["accuracy"],
            "trading": book_stats(book, gates, f.test_start, f.test_end),
            "vol": {"min": float(fvol.min()) if len(fvol) else None,
                    "max": float(fvol.max()) if len(fvol) else None},
            "per_instrument": {
                name: {"classification": classification(y[rows & (inst == name)], wf.proba[rows & (inst == name)]),
                       "trading": book_stats(book, gates, f.test_start, f.test_end, name)}
                for name in sorted(set(inst))},
        })
    lo, hi = int(ts[oof].min()), int(ts[oof].max())
    overall_cls = classification(y[oof], wf.proba[oof])
    ctrl = control_accuracy(y[oof], control[:, oof], inst[oof])
    overall_cls["shuffled_accuracy"] = ctrl["accuracy"]
    overall_cls["control"] = ctrl
    labelled = ~np.isnan(y)
    return {
        "schema": SCHEMA,
        "status": "running",
        "verdict": "",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": os.environ.get("PROOFWATCH_RUN_ID") or None,
        "job": os.environ.get("PROOFWATCH_JOB") or None,
        "model": None,
        "promoted": False,
        "data": {
            "source": source, "manifest_updated_at": manifest_at, "instruments": data,
            "rows": len(frame), "labelled": int(labelled.sum()),
            "up_share": float(np.nanmean(y)) if labelled.any() else None,
            "first_bar": iso(int(ts[0])), "last_bar": iso(int(ts[-1])),
            "warmup_bars": WARMUP_BARS,
        },
        "settings": settings.to_json(),
        "label": {"definition": LABEL, "round_trip": settings.round_trip, "horizon_bars": HORIZON_BARS},
        "sharpe_convention": SHARPE_CONVENTION,
        "folds": fold_docs,
        "per_instrument": {
            name: {"classification": classification(y[oof & (inst == name)], wf.proba[oof & (inst == name)]),
                   "trading": book_stats(book, gates, lo, hi, name)}
            for name in sorted(set(inst))},
        "overall": {
            "period": {"start": iso(lo), "end": iso(hi)},
            "classification": overall_cls,
            "trading": book_stats(book, gates, lo, hi),
            "vol": {"min": float(np.nanmin(vol[oof])), "max": float(np.nanmax(vol[oof]))},
        },
        "ab": None,
        "gates": {},
    }


def _run_gates(settings: Settings, frame: pd.DataFrame, oof: np.ndarray, m: dict[str, Any]) -> list[Verdict]:
    """trades (informational), leakage and regime (these fail the run)."""
    g = settings.gates
    o = m["overall"]
    cls = o["classification"]
    trading = o["trading"]
    trades = Verdict("trades", trading["sharpe"] is not None, trading["sharpe_note"])
    if cls["labelled"] == 0:
        leak = Verdict("leakage", False, "leakage check impossible: no labelled out-of-fold bar")
    else:
        ctrl = cls["control"]
        leak = leakage_gate(cls["accuracy"], cls["f1"], cls["shuffled_accuracy"], cls["base_rate"], g,
                            control_n=ctrl["effective_n"], chance=ctrl["chance"])
        ctrl["allowed_gap"] = chance_allowance(ctrl["chance"], ctrl["effective_n"], g)
    vol = frame["regime_vol"].to_numpy()
    history = vol[~np.isnan(vol)]
    test = vol[oof & ~np.isnan(vol)]
    regime = regime_gate(history.tolist(), test.tolist(), g)
    m["regime"] = {"p_low": percentile(history.tolist(), g.regime_low_pct) if len(history) else None,
                   "p_high": percentile(history.tolist(), g.regime_high_pct) if len(history) else None,
                   "test_min": float(test.min()) if len(test) else None,
                   "test_max": float(test.max()) if len(test) else None}
    m["gates"] = {"trades": _verdict(trades), "leakage": _verdict(leak), "regime": _verdict(regime)}
    return [leak, regime]


def _final_model(settings: Settings, frame: pd.DataFrame, X: np.ndarray, y: np.ndarray, names: list[str],
                 proba: np.ndarray, oof: np.ndarray, book: Book, registry: Registry,
                 m: dict[str, Any]) -> tuple[AB, dict[str, Any]]:
    est = _model.fit_final(X, y, settings.model)
    ts = frame["ts"].to_numpy()
    labelled = ~np.isnan(y)
    created = datetime.now(timezone.utc)
    model_id = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    through = int(ts[labelled].max())
    meta = {"enter": settings.enter, "cost_per_side": settings.cost_per_side,
            "round_trip": settings.round_trip, "trained_from_ms": int(ts[labelled].min()),
            "trained_through_ms": through, "trained_rows": int(labelled.sum()),
            "instruments": sorted(set(frame["inst"])), "label": LABEL,
            "created_at": created.isoformat(timespec="seconds"), "run_id": m["run_id"],
            "params": settings.to_json()["model"]}
    artifact = _model.make_artifact(est, X, y, model_id=model_id, features=names, meta=meta)
    sha = _model.save(artifact, settings.out_dir / "model.joblib")
    ab = compare(frame, proba, oof, book, settings, registry)
    t = m["overall"]["trading"]
    entry = {"id": model_id, "sha256": sha, "created_at": meta["created_at"], "run_id": m["run_id"],
             "trained_through": iso(through), "trained_through_ms": through, "features": len(names),
             "instruments": meta["instruments"],
             "oof": {k: t[k] for k in ("trades", "sharpe", "expectancy", "win_rate", "max_drawdown")}}
    doc = {"id": model_id, "file": "model.joblib", "sha256": sha, "features": names,
           "trained_from": iso(meta["trained_from_ms"]), "trained_through": iso(through),
           "trained_rows": meta["trained_rows"], "enter": settings.enter, "registry_entry": entry,
           "registry": str(registry.path)}
    return ab, doc


def _summary(m: dict[str, Any], promo: Verdict) -> str:
    t = m["overall"]["trading"]
    sharpe = f"Sharpe {t['sharpe']:.2f}" if t["sharpe"] is not None else t["sharpe_note"]
    exp = f"expectancy {t['expectancy'] * 100:+.4f} %/trade" if t["expectancy"] is not None else "no trades"
    return f"{t['trades']} out-of-fold trades, {sharpe}, {exp}; {promo.reason}"


def _write_proofs(settings: Settings, m: dict[str, Any], book: Book, frame: pd.DataFrame,
                  oof: np.ndarray, ab: AB | None, t0: float) -> None:
    """report.html is rendered first, so metrics.json can say how long everything took."""
    out = settings.out_dir
    if m["status"] == "failed":  # never leave a model from an earlier run next to a failed one
        (out / "model.joblib").unlink(missing_ok=True)
    ts = frame["ts"].to_numpy()
    lo, hi = int(ts[oof].min()), int(ts[oof].max())
    curves = {"portfolio": book.portfolio(lo, hi)}
    for name in sorted(set(frame["inst"])):
        bars = book.bars[book.bars["inst"] == name]
        curves[name] = bars.set_index("ts")["net"].sort_index()
    vol = frame["regime_vol"].to_numpy()
    history, test = vol[~np.isnan(vol)], vol[oof & ~np.isnan(vol)]
    g = settings.gates
    plots = {
        "equity": _report.equity_png(curves, m["folds"], ab.curves if ab else {}),
        "folds": _report.folds_png(m["folds"]),
        "regime": _report.regime_png(history, test, m["regime"]["p_low"] or 0.0, m["regime"]["p_high"] or 0.0,
                                     (g.regime_low_pct, g.regime_high_pct)),
    }
    timings = m["timings"]
    timings["report"] = time.monotonic() - t0 - sum(timings.values())
    timings["total"] = time.monotonic() - t0  # up to the proofs (the registry copy follows)
    html = _report.render(m, plots)
    write_json(out / "metrics.json", m)
    write_atomic(out / "walk_forward.csv", walk_forward_csv(m))
    write_atomic(out / "report.html", html.encode())
