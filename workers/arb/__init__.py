"""The arb matcher: match the emulator's OCR'd odds to The Odds API v4 events and find real
arbitrage with stake splits that survive rounding (a proofwatch `task`, after = ["emulator"]).
Imports: pandas, rapidfuzz, httpx, workers.sdk; never supervisor/ or status/.

    python -m workers.arb [--state-dir var | --odds-json PATH] [--api-url URL] ...

Inputs: the newest SUCCEEDED emulator run whose odds.json proof verified, read from
<state_dir>/history.db (table runs) read-only with sqlite3 (`sources.py`); the API key from
$ODDS_API_KEY. Modules: `convert.py` (odds formats), `names.py` (normalisation, aliases.json,
rapidfuzz resolution), `matching.py` (pandas join on sport + participants + time window),
`arbitrage.py` (best price, arb condition, rounded stakes, boost EV), `sources.py` (history,
odds.json, API client), `_job.py` (stages, heartbeats, outputs), `arbs.schema.json`.
Outputs in the run dir: arbs.json, matches.csv, unmatched.csv.
"""

from __future__ import annotations

from workers.arb._job import Settings, run_job
from workers.arb.arbitrage import Arb, Leg, Quote, best_quotes, find_arb, round_to
from workers.arb.errors import ApiError, ArbError, ConfigError, InputError

__all__ = [
    "ApiError",
    "Arb",
    "ArbError",
    "ConfigError",
    "InputError",
    "Leg",
    "Quote",
    "Settings",
    "best_quotes",
    "find_arb",
    "round_to",
    "run_job",
]
