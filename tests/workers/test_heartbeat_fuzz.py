"""Property-based fuzzing of the heartbeat protocol (issue 11): whatever bytes a worker leaves in
its heartbeat file, `parse_heartbeat` and the daemon's intake give a heartbeat or one clear
HeartbeatError naming the field, never another exception; what the sdk writes parses back."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from supervisor import intake
from supervisor.runs import RunState
from tests._fuzz import fuzz_settings
from workers.protocol import HEARTBEAT_MAX_BYTES, MESSAGE_MAX_CHARS, Heartbeat, HeartbeatError, parse_heartbeat
from workers.sdk import Run

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FIELDS = ("seq:", "ts:", "progress", "phase:", "message:", "blocker:", "progress_at:", "proofs",
          "not valid JSON: ", "expected a JSON object", "heartbeat is ")

# --- strategies --------------------------------------------------------------------------------

# any code point, lone surrogates ("\ud800", what JSON's "\ud800" escape decodes to) included
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=30) | st.sampled_from(
    ["", "\x00", "\ud800", "a\udcffb", "\ufeff", "../../etc/passwd", "x" * 3000, "Z", "\u2028"])
NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10**308, 10**309, -(10**400), 2**63, -1, 0, 1e308, 5e-324]))
TIMESTAMPS = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # naive: read as UTC
    st.datetimes(timezones=st.builds(
        timezone, st.integers(-86_399, 86_399).map(lambda s: timedelta(seconds=s)))).map(datetime.isoformat),
    st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
                     "2026-13-01", "2026-02-30T00:00:00", "yesterday", "", "2026-01-01T00:00:00ZZ"]),
    ANY_TEXT,
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=12)


def _field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right shape, sometimes anything at all."""
    return st.one_of(good, good, JSON_VALUES)


PROOFS = st.lists(st.one_of(ANY_TEXT, st.fixed_dictionaries(
    {"path": _field(ANY_TEXT)}, optional={"kind": _field(st.sampled_from(["file", "png", "json", "x"]))})),
    max_size=4)
DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "seq": _field(st.integers(min_value=-3, max_value=2**70)),
        "ts": _field(TIMESTAMPS),
        "progress": _field(st.dictionaries(ANY_TEXT, NUMBERS, max_size=4)),
        "phase": _field(ANY_TEXT),
        "message": _field(ANY_TEXT),
        "blocker": _field(st.none() | ANY_TEXT),
        "progress_at": _field(st.none() | TIMESTAMPS),
        "proofs": _field(PROOFS),
        "extra": JSON_VALUES,
    },
)

# valid, but with every field at its odd end (NUL, long text, extreme dates and numbers)
TEXT = st.text(max_size=30) | st.sampled_from(["", "\x00", "x" * 3000, "\u2028", "caf\u00e9 \U0001f600"])
VALID_DOCUMENTS = st.fixed_dictionaries(
    {"seq": st.integers(min_value=0, max_value=2**70),
     "ts": st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat) | st.sampled_from(
         ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-01-01"])},
    optional={
        "progress": st.dictionaries(TEXT, st.floats(allow_nan=False, allow_infinity=False)
                                    | st.integers(-(10**300), 10**300), max_size=4),
        "phase": TEXT, "message": TEXT, "blocker": st.none() | TEXT,
        "progress_at": st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"])
        | st.datetimes(timezones=st.just(timezone.utc)).map(datetime.isoformat),
        "proofs": st.lists(TEXT.filter(lambda t: "\0" not in t) | st.fixed_dictionaries(
            {"path": st.sampled_from(["out.json", "/etc/passwd", "../x", "data:ticks/*.parquet", ""]),
             "kind": st.sampled_from(["file", "png", "command", "http", ""])}), max_size=3),
    },
)


@st.composite
def heartbeat_bytes(draw: st.DrawFn) -> bytes:
    """A heartbeat document, then maybe damaged the way a file can be."""
    doc = draw(st.one_of(VALID_DOCUMENTS, DOCUMENTS, DOCUMENTS, JSON_VALUES))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))  # NaN and Infinity included
    raw = text.encode("utf-8", errors="surrogatepass")  # a raw lone surrogate: invalid UTF-8
    damage = draw(st.sampled_from(["none", "none", "truncate", "splice", "nest", "bigint", "utf16", "bom"]))
    if damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif damage == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    elif damage == "nest":
        depth = draw(st.sampled_from([10, 1000, 100_000]))
        raw = b'{"seq": 1, "ts": "2026-01-01T00:00:00Z", "progress": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    elif damage == "bigint":
        raw = b'{"seq": ' + b"9" * draw(st.sampled_from([20, 4300, 4301, 100_000])) + b', "ts": "2026-01-01"}'
    elif damage == "utf16":
        raw = text.encode("utf-16", errors="surrogatepass")
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    return raw


HEARTBEATS = st.one_of(heartbeat_bytes(), st.binary(max_size=200))


# --- the properties ----------------------------------------------------------------------------

def _check_parsed(hb: Heartbeat) -> None:
    """A heartbeat the parser accepted is one every later stage can store."""
    assert isinstance(hb.seq, int) and not isinstance(hb.seq, bool) and hb.seq >= 0
    assert hb.ts.tzinfo is not None
    assert all(math.isfinite(v) and not isinstance(v, bool) for v in hb.progress.values())
    assert len(hb.message) <= MESSAGE_MAX_CHARS
    texts = [hb.phase, hb.message, hb.blocker or "", *hb.progress, *(p for pair in hb.proofs for p in pair)]
    for text in texts:
        text.encode("utf-8")  # status.json and the history encode every string as UTF-8
    assert all("\0" not in path for path, _ in hb.proofs)
    assert parse_heartbeat(hb.to_json()) == hb  # what we would write back reads the same


def _check_error(exc: HeartbeatError) -> None:
    message = str(exc)
    assert message.startswith(FIELDS), message
    assert len(message) < 400 and "\n" not in message, message


# Found by this test (each crashed with something other than a HeartbeatError, or worse):
REGRESSIONS = [
    b"[" * 200_000,  # RecursionError from json.loads
    b'{"seq": ' + b"9" * 5000 + b', "ts": "2026-01-01"}',  # ValueError: over 4300 digits
    b'{"seq": 1, "ts": "2026-01-01", "progress": {"a": 1' + b"0" * 400 + b"}}",  # OverflowError in isfinite
    b'{"seq": 1, "ts": "2026-01-01", "phase": "\\udfff"}',  # accepted; then crashed the daemon's
    b'{"seq": 1, "ts": "2026-01-01", "progress": {"\\ud800": 1}}',  # status writer (UTF-8)
    b'{"seq": 1, "ts": "2026-01-01", "proofs": ["a\\u0000b"]}',  # a path no file can have
]


@fuzz_settings(400)
@given(raw=HEARTBEATS)
@example(raw=REGRESSIONS[0])
@example(raw=REGRESSIONS[1])
@example(raw=REGRESSIONS[2])
@example(raw=REGRESSIONS[3])
@example(raw=REGRESSIONS[4])
@example(raw=REGRESSIONS[5])
@example(raw=b'{"seq": 1, "ts": "2026-01-01", "progress_at": 5}')  # once blamed on "ts"
@example(raw=b'{"seq": "' + b"x" * 900_000 + b'", "ts": "2026"}')  # once echoed 900 KB back
def test_any_heartbeat_bytes_parse_or_raise_a_heartbeat_error_naming_the_field(raw: bytes) -> None:
    try:
        hb = parse_heartbeat(raw)
    except HeartbeatError as exc:
        _check_error(exc)
    else:
        _check_parsed(hb)


@fuzz_settings(100)
@given(doc=JSON_VALUES)
def test_parsing_text_and_bytes_agree(doc: Any) -> None:
    text = json.dumps(doc)
    outcomes = []
    for raw in (text, text.encode()):
        try:
            outcomes.append(parse_heartbeat(raw))
        except HeartbeatError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


@fuzz_settings(250)
@given(raw=HEARTBEATS)
@example(raw=REGRESSIONS[3])
@example(raw=REGRESSIONS[1])
def test_the_intake_reads_any_heartbeat_file_into_state_it_can_store(tmp_path: Path, raw: bytes) -> None:
    run = RunState("j", "r1", "task", tmp_path, T0)
    Path(run.heartbeat_path).write_bytes(raw)
    got = intake.read_heartbeat(run, T0 + timedelta(seconds=1))
    try:
        expected = parse_heartbeat(raw)
    except HeartbeatError as exc:
        assert got.error == f"malformed heartbeat ignored: {exc}" and not got.beat
        assert run.first_beat_at is None and run.hb_seq == -1
    else:
        assert got.beat and got.error is None
        assert run.hb_seq == expected.seq and run.progress == expected.progress
        assert (run.phase, run.message, run.blocker) == (expected.phase, expected.message, expected.blocker)
        assert run.last_progress_at is not None and T0 <= run.last_progress_at <= T0 + timedelta(seconds=1)
    stored = json.dumps({"progress": run.progress, "phase": run.phase, "message": run.message,
                         "blocker": run.blocker, "proofs": run.declared_proofs}, ensure_ascii=False)
    stored.encode("utf-8")
    assert intake.read_heartbeat(run, T0 + timedelta(seconds=2)) == intake.NOTHING  # unchanged file


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "one-byte-over"])
def test_the_size_limit_is_exact_in_the_parser_and_the_intake(tmp_path: Path, extra: int) -> None:
    doc = b'{"seq": 1, "ts": "2026-01-01T00:00:00Z"}'
    raw = doc + b" " * (HEARTBEAT_MAX_BYTES - len(doc) + extra)
    run = RunState("j", "r1", "task", tmp_path, T0)
    Path(run.heartbeat_path).write_bytes(raw)
    got = intake.read_heartbeat(run, T0)
    if extra:
        with pytest.raises(HeartbeatError, match=f"limit {HEARTBEAT_MAX_BYTES}"):
            parse_heartbeat(raw)
        assert got.error is not None and f"limit {HEARTBEAT_MAX_BYTES}" in got.error
    else:
        assert parse_heartbeat(raw).seq == 1 and got.beat


# --- what the sdk writes -----------------------------------------------------------------------

COUNTERS = st.dictionaries(st.text(max_size=12), st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)), max_size=5)
PATH_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\0")  # what a path can hold
CALLS = st.lists(st.one_of(
    st.tuples(st.just("beat"), COUNTERS, st.none() | st.text(max_size=20), st.none() | st.text(max_size=2100)),
    st.tuples(st.just("blocked"), st.text(min_size=1, max_size=50)),
    st.tuples(st.just("unblocked")),
    st.tuples(st.just("proof"), st.text(PATH_CHARS, min_size=1, max_size=30),
              st.sampled_from(["file", "png", "json", "jsonl", "text"])),
), min_size=1, max_size=8)


@fuzz_settings(200)
@given(calls=CALLS)
def test_whatever_the_sdk_writes_parses_back_to_the_same_values(tmp_path: Path, calls: list[tuple[Any, ...]]) -> None:
    path = tmp_path / "heartbeat.json"
    path.unlink(missing_ok=True)
    run = Run(path, min_interval=0, scratch=str(tmp_path))
    progress: dict[str, float] = {}
    phase, message, blocker, proofs = "", "", None, []
    writes = 0
    for call in calls:
        writes += 1  # every call below writes one heartbeat
        if call[0] == "beat":
            _, counters, new_phase, new_message = call
            run.beat(counters, phase=new_phase, message=new_message, force=True)
            progress.update({k: float(v) for k, v in counters.items()})
            phase = phase if new_phase is None else new_phase
            message = message if new_message is None else new_message
        elif call[0] == "blocked":
            run.blocked(call[1])
            blocker = message = call[1]
        elif call[0] == "unblocked":
            run.unblocked()
            blocker = None
        else:
            run.proof(call[1], call[2])
            proofs += [] if (call[1], call[2]) in proofs else [(call[1], call[2])]
    hb = parse_heartbeat(path.read_bytes())
    assert hb.seq == writes
    assert hb.progress == progress and hb.phase == phase
    assert hb.message == message[:MESSAGE_MAX_CHARS] and hb.blocker == blocker
    assert list(hb.proofs) == proofs
    assert (hb.progress_at is not None) == any(c[0] == "beat" for c in calls)
    assert hb.ts.tzinfo is not None


@pytest.mark.parametrize(("call", "field"), [
    (lambda run: run.beat({"loss": float("nan")}, force=True), "progress.loss: expected a finite number"),
    (lambda run: run.beat(phase="caf\udce9", force=True), "phase: not valid Unicode"),
    (lambda run: run.proof("shot-\udcff.png", "png"), "proofs[0].path: not valid Unicode"),
], ids=["nan-counter", "surrogate-phase", "surrogate-proof-path"])
def test_what_the_sdk_writes_but_the_supervisor_refuses_is_named(tmp_path: Path, call: Any, field: str) -> None:
    """The sdk does not check its input: a NaN counter, or a file name decoded with
    surrogateescape, is refused by the supervisor, and the error says which field."""
    path = tmp_path / "heartbeat.json"
    call(Run(path, min_interval=0, scratch=str(tmp_path)))
    with pytest.raises(HeartbeatError) as info:
        parse_heartbeat(path.read_bytes())
    assert str(info.value).startswith(field)
