"""The retrain job end to end, in-process, on synthetic stores in the ingestor's layout."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from policies.trading import ArmStats, promotion_gate
from workers.retrain import NotEnoughHistory, _job
from workers.retrain.__main__ import main
from workers.retrain._features import build_frame
from workers.retrain._job import Outcome, run
from workers.retrain._registry import Registry
from workers.retrain.synthetic import Market, write_store
from workers.retrain.verify import main as verify
from workers.sdk import Run, read_heartbeat

from .conftest import RANDOM_WALK, SIGNAL, settings

SCHEMA = json.loads((Path(_job.__file__).parent / "metrics.schema.json").read_bytes())
FAST_ARGS = ["--max-iter", "30", "--max-leaf-nodes", "6", "--min-samples-leaf", "20", "--progress", "never"]


def peek(bars: pd.DataFrame) -> pd.DataFrame:
    """A feature that looks one bar ahead: exactly what the leakage gate is there to catch."""
    return pd.DataFrame({"peek_next_ret": bars["close"].shift(-1) / bars["close"] - 1}, index=bars.index)


def _valid(metrics: dict[str, object]) -> None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(metrics))
    assert error is None, f"{error.json_path}: {error.message}"  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def signal_run(store_of: Callable[[Market], Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, Path]:
    out = tmp_path_factory.mktemp("signal")
    hb = out / "heartbeat.json"
    s = settings(store_of(SIGNAL), out / "run", models_dir=out / "models")
    return run(s, Run(hb, min_interval=0.0)), out


def test_a_planted_signal_is_found_out_of_fold_and_promoted(signal_run: tuple[Outcome, Path]) -> None:
    outcome, out = signal_run
    m = outcome.metrics
    assert outcome.exit_code == 0 and m["status"] == "succeeded"
    t = m["overall"]["trading"]
    assert t["trades"] >= 100 and t["sharpe"] > 0 and t["expectancy"] > 0
    assert 0.6 < m["overall"]["classification"]["accuracy"] < 0.95
    assert all(g["passed"] for g in m["gates"].values()), m["gates"]
    assert m["promoted"] and m["gates"]["promotion"]["reason"].startswith("promoted: Sharpe")
    assert len(m["folds"]) == 5 and all(f["trading"]["bars"] > 0 for f in m["folds"])
    current = Registry(out / "models").current()
    assert current is not None and current["id"] == m["model"]["id"] and current["sha256"] == m["model"]["sha256"]


def test_the_proofs_are_written_complete_and_consistent(signal_run: tuple[Outcome, Path]) -> None:
    outcome, out = signal_run
    run_dir = out / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.json", "model.joblib", "report.html",
                                                         "walk_forward.csv"]
    metrics = json.loads((run_dir / "metrics.json").read_bytes())
    _valid(metrics)
    assert metrics["verdict"] == outcome.verdict
    rows = list(csv.DictReader((run_dir / "walk_forward.csv").read_text().splitlines()))
    assert [r["fold"] for r in rows if r["instrument"] == "ALL"] == ["1", "2", "3", "4", "5", "all"]
    assert {r["instrument"] for r in rows} == {"ALL", "BTC-USDT", "ETH-USDT"}
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "PROMOTED" in html
    assert verify([str(run_dir / "model.joblib")]) == 0


def test_heartbeats_count_folds_and_end_with_the_verdict(signal_run: tuple[Outcome, Path]) -> None:
    outcome, out = signal_run
    hb = read_heartbeat(out / "heartbeat.json")
    assert hb is not None
    assert hb.progress["folds"] == 5 and hb.progress["control_folds"] == 15  # 3 repeats
    assert hb.phase == "done" and hb.message == outcome.verdict


def test_data_summary_reports_ticks_and_bars(signal_run: tuple[Outcome, Path]) -> None:
    d = signal_run[0].metrics["data"]
    btc = d["instruments"]["BTC-USDT"]
    assert btc["bars"] == 3 * 288 and btc["missing"] == 0 and btc["ticks"] == 20_000
    assert 200 < btc["bars_with_ticks"] < 288  # the last day, minus the edges


def test_a_random_walk_is_not_promoted(store_of: Callable[[Market], Path], tmp_path: Path) -> None:
    outcome = run(settings(store_of(RANDOM_WALK), tmp_path / "run", models_dir=tmp_path / "models"), Run(None))
    m = outcome.metrics
    assert outcome.exit_code == 0 and m["status"] == "succeeded" and not m["promoted"]
    assert m["gates"]["leakage"]["passed"] and m["gates"]["regime"]["passed"]
    assert m["gates"]["promotion"]["reason"].startswith("kept, not promoted: ")
    assert m["overall"]["trading"]["expectancy"] is None or m["overall"]["trading"]["expectancy"] <= 0
    assert Registry(tmp_path / "models").current() is None
    assert [c["id"] for c in Registry(tmp_path / "models").read()["candidates"]] == [m["model"]["id"]]
    _valid(m)


def test_a_feature_that_peeks_at_the_future_fails_the_run_as_leakage(
        store_of: Callable[[Market], Path], tmp_path: Path) -> None:
    outcome = run(settings(store_of(RANDOM_WALK), tmp_path / "run", models_dir=tmp_path / "models"),
                  Run(None), extra=peek)
    m = outcome.metrics
    assert outcome.exit_code == 1 and m["status"] == "failed"
    assert outcome.verdict.startswith("leakage suspected: out-of-fold accuracy")
    assert not m["gates"]["leakage"]["passed"] and m["overall"]["classification"]["accuracy"] >= 0.95
    assert m["gates"]["promotion"]["reason"].startswith("not evaluated: leakage suspected")
    assert not (tmp_path / "run" / "model.joblib").exists()  # a leaky model is never offered
    assert not (tmp_path / "models").exists()
    _valid(json.loads((tmp_path / "run" / "metrics.json").read_bytes()))


def test_the_cli_exits_1_with_the_leakage_verdict_as_the_last_line_of_stderr(
        store_of: Callable[[Market], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_job, "build_frame", lambda bars, cost, extra=None: build_frame(bars, cost, peek))
    code = main(["--data-dir", str(store_of(RANDOM_WALK)), "--out", str(tmp_path / "run"),
                 "--models-dir", str(tmp_path / "models"), *FAST_ARGS])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("retrain: FAILED: leakage suspected: out-of-fold accuracy")


def test_fewer_than_30_trades_reports_insufficient_trades_not_a_sharpe(
        store_of: Callable[[Market], Path], tmp_path: Path) -> None:
    outcome = run(settings(store_of(RANDOM_WALK), tmp_path / "run", models_dir=tmp_path / "models",
                           enter=0.8), Run(None))
    m = outcome.metrics
    t = m["overall"]["trading"]
    assert outcome.exit_code == 0 and m["status"] == "succeeded"
    assert t["trades"] < 30 and t["sharpe"] is None
    assert t["sharpe_note"] == f"insufficient trades: {t['trades']} < 30, Sharpe not reported"
    assert m["gates"]["trades"] == {"passed": False, "reason": t["sharpe_note"]}
    assert all(f["trading"]["sharpe"] is None for f in m["folds"])
    assert not m["promoted"] and "trades < 100" in m["gates"]["promotion"]["reason"]
    assert "Sharpe" not in outcome.verdict.split(";")[0].replace("Sharpe not reported", "")


def test_a_second_run_on_the_same_data_cannot_beat_an_incumbent_it_cannot_be_compared_with(
        store_of: Callable[[Market], Path], signal_run: tuple[Outcome, Path], tmp_path: Path) -> None:
    first, out = signal_run
    outcome = run(settings(store_of(SIGNAL), tmp_path / "run", models_dir=out / "models"), Run(None))
    m = outcome.metrics
    assert outcome.exit_code == 0 and not m["promoted"]
    assert m["gates"]["promotion"]["reason"].startswith(
        f"kept, not promoted: the incumbent {first.metrics['model']['id']} was trained through")
    assert Registry(out / "models").current()["id"] == first.metrics["model"]["id"]  # type: ignore[index]


def test_ab_compares_both_arms_on_the_bars_after_the_incumbents_training_data(tmp_path: Path) -> None:
    market = dataclasses.replace(SIGNAL, ticks=0, seed=8)
    day = 86_400_000
    early, full = tmp_path / "early", tmp_path / "full"
    write_store(early, market, until_ms=market.end_ms - day)  # the same market, a day earlier
    write_store(full, market)
    models = tmp_path / "models"
    first = run(settings(early, tmp_path / "r1", models_dir=models, min_bars=288), Run(None))
    assert first.metrics["promoted"], first.verdict
    second = run(settings(full, tmp_path / "r2", models_dir=models), Run(None))
    m = second.metrics
    ab = m["ab"]
    assert ab["incumbent"]["id"] == first.metrics["model"]["id"]
    assert ab["period"]["start"] > first.metrics["model"]["trained_through"]
    assert ab["period"]["bars"] > 200 and ab["incumbent_arm"]["trades"] > 0 and ab["candidate"]["trades"] > 0

    def arm(d: dict[str, float]) -> ArmStats:
        return ArmStats(d["trades"], d["sharpe"], d["expectancy"] if d["expectancy"] is not None else 0.0)

    expected = promotion_gate(arm(ab["candidate"]), arm(ab["incumbent_arm"]))
    assert m["gates"]["promotion"] == {"passed": expected.passed, "reason": expected.reason}
    doc = Registry(models).read()
    if m["promoted"]:
        assert doc["current"]["id"] == m["model"]["id"] and doc["archive"][0]["id"] == first.metrics["model"]["id"]
        assert (models / "archive" / first.metrics["model"]["id"] / "model.joblib").exists()
    else:
        assert doc["current"]["id"] == first.metrics["model"]["id"]
        assert doc["candidates"][0]["id"] == m["model"]["id"]


def test_too_little_history_fails_with_how_many_bars_and_how_many_are_needed(tmp_path: Path) -> None:
    write_store(tmp_path / "data", Market(days=1.0))
    with pytest.raises(NotEnoughHistory, match=r"^not enough history: 288 bars, need 432 \(5-minute bars, 24.0 h"):
        run(settings(tmp_path / "data", tmp_path / "run"), Run(None))


def test_a_history_whose_test_folds_never_saw_calm_markets_is_not_converged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_store(tmp_path / "data", Market(days=3.0, calm_until=0.7, seed=4))
    code = main(["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--test-bars", "24",
                 "--models-dir", str(tmp_path / "models"), *FAST_ARGS])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("retrain: FAILED: not converged: the test folds never saw calm markets")
    m = json.loads((tmp_path / "run" / "metrics.json").read_bytes())
    assert m["status"] == "failed" and not m["gates"]["regime"]["passed"]
    assert not (tmp_path / "models").exists()


def test_a_bad_flag_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "--folds", "3"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "retrain: FAILED: --folds: must be >= 5 (a walk-forward needs at least 5 folds)")
