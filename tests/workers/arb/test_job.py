"""The whole run against the sandbox: every planted arb found, no decoy, stale data dropped,
history lookup, and API errors reported in the API's own words."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.workers.arb.conftest import odds_json_from_truth, write_odds_json
from workers.arb import ApiError, InputError, Settings, run_job
from workers.arb.__main__ import main
from workers.arb.sources import commence_from_label, latest_odds_json, parse_iso
from workers.sandbox.server import SandboxHandle
from workers.sdk import Run

SCHEMA = Path(__file__).resolve().parents[3] / "workers" / "arb" / "arbs.schema.json"


def truth(sb: SandboxHandle) -> dict:
    return httpx.get(sb.http_url + "/_sandbox/odds/truth").json()


@pytest.mark.parametrize("odds_format", ["decimal", "american"])
def test_every_planted_arb_is_found_and_no_decoy(tmp_path: Path, sandbox: SandboxHandle,
                                                 odds_format: str) -> None:
    src = write_odds_json(tmp_path / "odds.json", odds_json_from_truth(sandbox.http_url))
    s = Settings(odds_json=src, out=tmp_path / "out", api_url=sandbox.http_url, api_key="k",
                 odds_format=odds_format)
    doc = run_job(s, Run(None))
    t = truth(sandbox)
    found = {o["event_id"] for o in doc["opportunities"]}
    assert found == {a["event_id"] for a in t["arbs"]}
    assert not found & {d["event_id"] for d in t["decoys"]}
    assert doc["summary"]["unmatched"] == 0 and doc["summary"]["matched"] == 34
    for o in doc["opportunities"]:
        stakes = sum(leg["stake"] for leg in o["legs"])
        assert stakes == pytest.approx(o["total_stake"])
        assert min(leg["returns"] for leg in o["legs"]) - stakes == pytest.approx(
            o["guaranteed_profit"], abs=0.01)
        assert o["guaranteed_profit"] > 0 and o["ways"] == len(o["legs"])
    assert any(o["ways"] == 3 for o in doc["opportunities"])
    assert any(b["status"] == "evaluated" and b["positive_ev"] for b in doc["boosts"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert (tmp_path / "out" / "matches.csv").read_text().count("\n") == 35
    assert doc["inputs"]["api"]["quota"]["last"] == 1


def test_stale_ocr_odds_are_dropped(tmp_path: Path, sandbox: SandboxHandle) -> None:
    src = write_odds_json(tmp_path / "odds.json",
                          odds_json_from_truth(sandbox.http_url, "2020-01-01T00:00:00.000Z"))
    s = Settings(odds_json=src, out=tmp_path, api_url=sandbox.http_url, api_key="k")
    doc = run_job(s, Run(None))
    assert all(leg["book"] != "sandbook" for o in doc["opportunities"] for leg in o["legs"])
    assert all(leg["age_s"] <= 600 for o in doc["opportunities"] for leg in o["legs"])


@pytest.mark.parametrize(("key", "code", "blocked"), [
    ("", "MISSING_KEY", True), ("invalid", "INVALID_KEY", True),
    ("spent", "OUT_OF_USAGE_CREDITS", True)])
def test_api_errors_carry_the_apis_own_message(tmp_path: Path, sandbox: SandboxHandle, key: str,
                                               code: str, blocked: bool) -> None:
    httpx.post(sandbox.http_url + "/_sandbox/odds/quota", json={"key": "spent", "remaining": 0})
    src = write_odds_json(tmp_path / "odds.json", odds_json_from_truth(sandbox.http_url))
    with pytest.raises(ApiError) as info:
        run_job(Settings(odds_json=src, out=tmp_path, api_url=sandbox.http_url, api_key=key), Run(None))
    assert info.value.code == code and info.value.blocked is blocked
    if code == "OUT_OF_USAGE_CREDITS":
        assert "Usage quota has been reached" in str(info.value)


def test_cli_reports_a_blocker_and_exits_1(tmp_path: Path, sandbox: SandboxHandle,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = write_odds_json(tmp_path / "odds.json", odds_json_from_truth(sandbox.http_url))
    monkeypatch.setenv("ODDS_API_KEY", "invalid")
    assert main(["--odds-json", str(src), "--out", str(tmp_path), "--api-url", sandbox.http_url]) == 1
    assert "INVALID_KEY: API key is not valid" in capsys.readouterr().err


def test_rate_limit_is_retried(tmp_path: Path, sandbox: SandboxHandle) -> None:
    httpx.post(sandbox.http_url + "/_sandbox/odds/limit", json={"times": 1})
    src = write_odds_json(tmp_path / "odds.json", odds_json_from_truth(sandbox.http_url))
    doc = run_job(Settings(odds_json=src, out=tmp_path, api_url=sandbox.http_url, api_key="r",
                           sports=("soccer_epl",)), Run(None))
    assert doc["inputs"]["api"]["requests"] == 2


def test_latest_verified_odds_json_comes_from_the_history(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE runs (run_id TEXT, job TEXT, state TEXT, run_dir TEXT, "
                "ended_at TEXT, proofs JSON)")
    ok = [{"path": "odds.json", "ok": True}]
    for rid, state, ended, proofs in (
            ("a", "SUCCEEDED", "2026-01-01 10:00:00", ok),
            ("b", "SUCCEEDED", "2026-01-01 11:00:00", ok),
            ("c", "FAILED", "2026-01-01 12:00:00", ok),
            ("d", "SUCCEEDED", "2026-01-01 13:00:00", [{"path": "odds.json", "ok": False}])):
        run_dir = tmp_path / "runs" / "emulator" / rid
        write_odds_json(run_dir / "odds.json", {})
        con.execute("INSERT INTO runs VALUES (?, 'emulator', ?, ?, ?, ?)",
                    (rid, state, str(run_dir), ended, json.dumps(proofs)))
    con.commit()
    con.close()
    assert latest_odds_json(tmp_path) == tmp_path / "runs" / "emulator" / "b" / "odds.json"
    with pytest.raises(InputError, match="no SUCCEEDED 'other' run"):
        latest_odds_json(tmp_path, "other")
    with pytest.raises(InputError, match="no proofwatch history"):
        latest_odds_json(tmp_path / "nowhere")


def test_commence_from_a_weekday_label() -> None:
    cap = parse_iso("2026-11-25T13:31:00Z")  # a Wednesday
    assert commence_from_label("WED 04:30", cap) == parse_iso("2026-11-25T04:30:00Z")
    assert commence_from_label("THU 01:00", cap) == parse_iso("2026-11-26T01:00:00Z")
    assert commence_from_label("TUE 23:00", cap) == parse_iso("2026-11-24T23:00:00Z")
    assert commence_from_label("LATER", cap) is None
