"""supervisor/proofs.py per kind: real files, real verifier processes, a real HTTP server on
loopback, a real git repo; and the ProofSpec config validation that goes with them."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from policies.proofs import age_problem, lookup_problem, size_problem, span
from status.models import ProofStatus
from supervisor.config import ConfigError, ProofSpec, load_config
from supervisor.proofs import failure_summary, verify_all, verify_spec

STARTED = datetime.now(timezone.utc) - timedelta(minutes=5)


# --- genuine artifacts -----------------------------------------------------------------------

def png_bytes(width: int = 32, height: int = 24) -> bytes:
    """A real, decodable grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def jpeg_bytes(width: int = 32, height: int = 24) -> bytes:
    """A real baseline grey JPEG: every 8x8 block is DC 0 then end-of-block (one-symbol tables)."""
    def segment(marker: int, data: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data
    blocks = -(-width // 8) * -(-height // 8)
    bits = "00" * blocks  # DC category 0 = "0", EOB = "0"
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big")
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    return (b"\xff\xd8"
            + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_symbol) + segment(0xC4, b"\x10" + one_symbol)
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan + b"\xff\xd9")


def parquet_bytes(path: Path, rows: int = 10, columns: tuple[str, ...] = ("ts", "price")) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({name: list(range(rows)) for name in columns}), path)


def sqlite_db(path: Path, rows: int = 10, table: str = "trades") -> None:
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, price REAL)")
        con.executemany(f"INSERT INTO {table} (price) VALUES (?)", [(i * 1.5,) for i in range(rows)])
    con.close()


def write(path: Path, data: bytes, *, age_before_start: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age_before_start is not None:
        backdate(path, -age_before_start)
    return path


def backdate(path: Path, seconds_after_start: float) -> None:
    t = (STARTED + timedelta(seconds=seconds_after_start)).timestamp()
    os.utime(path, (t, t))


def make(kind: str, path: Path) -> Path:
    """Write a genuine `kind` artifact at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        parquet_bytes(path)
    elif kind == "sqlite":
        sqlite_db(path)
    else:
        write(path, GENUINE[kind])
    return path


GENUINE: dict[str, bytes] = {
    "file": b"model weights\n", "text": b"trained 10 epochs\nauc=0.71\ndone\n",
    "log": b"INFO start\nINFO done\n", "json": b'{"model": {"metrics": {"auc": 0.71}}, "items": [{"id": 1}]}',
    "jsonl": b'{"t": 1}\n{"t": 2}\n{"t": 3}\n', "png": png_bytes(), "jpeg": jpeg_bytes(),
}
NAMES = {"file": "out.bin", "text": "report.txt", "log": "run.log", "json": "out.json",
         "jsonl": "ticks.jsonl", "png": "shot.png", "jpeg": "shot.jpg", "parquet": "ticks.parquet",
         "sqlite": "trades.db"}
SIGNATURE_CHECK = {"file": "not empty", "text": "UTF-8 text", "log": "not empty", "json": "valid JSON",
                   "jsonl": "valid JSONL, 3 lines", "png": "PNG 32x24", "jpeg": "JPEG 32x24",
                   "parquet": "Parquet 10 rows", "sqlite": "SQLite, 1 table"}
WRONG_TYPE = {  # something else under the kind's name, and the start of the reason
    "text": (b"\xff\xfe\x00binary", "not UTF-8 text (invalid byte 0xff at offset 0)"),
    "json": (b'{"model": {"metrics": {"auc": 0.7', "not valid JSON: "),
    "jsonl": (b'{"t": 1}\n{"t": 2\n{"t": 3}\n', "line 2 is not valid JSON: "),
    "png": (b"hello world, I am text\n", 'not a PNG (magic bytes 68 65 6c 6c 6f 20 77 6f = "hello wo"'),
    "jpeg": (b"hello world, I am text\n", "not a JPEG (magic bytes 68 65 6c"),
    "parquet": (b"ts,price\n1,2\n", "not a Parquet file (magic bytes "),
    "sqlite": (b"CREATE TABLE trades (id);\n", "not an SQLite database (magic bytes "),
}
FILE_KINDS = list(NAMES)


def spec(**keys: Any) -> ProofSpec:
    return ProofSpec.model_validate(keys)


def check(proof: ProofSpec, run_dir: Path, data_dir: Path, **kw: Any) -> list[ProofStatus]:
    return verify_spec(proof, run_dir, data_dir, STARTED, **kw)


def failures(results: list[ProofStatus]) -> list[str]:
    return [r.detail for r in results if not r.ok]


# --- every file kind: the shared checks ------------------------------------------------------

@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_passes_on_a_genuine_artifact_with_size_sha256_and_checks(
    run_dir: Path, data_dir: Path, kind: str
) -> None:
    path = make(kind, run_dir / NAMES[kind])
    [result] = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert (result.ok, result.detail, result.kind) == (True, "ok", kind)
    assert result.size == path.stat().st_size and result.sha256 is not None and result.mtime is not None
    assert result.checks[:2] == ["fresh", "not empty"]
    assert SIGNATURE_CHECK[kind] in result.checks


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_fails_when_missing(run_dir: Path, data_dir: Path, kind: str) -> None:
    results = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert failures(results) == ["missing: nothing matched; min_count is 1"]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_fails_when_empty(run_dir: Path, data_dir: Path, kind: str) -> None:
    write(run_dir / NAMES[kind], b"")
    results = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert failures(results) == ["empty: 0 bytes", "missing: 1 matched, 0 valid; min_count is 1"]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_fails_when_too_small(run_dir: Path, data_dir: Path, kind: str) -> None:
    size = make(kind, run_dir / NAMES[kind]).stat().st_size
    [result, _] = check(spec(path=NAMES[kind], kind=kind, min_bytes=size + 1), run_dir, data_dir)
    assert result.detail == f"too small: {size} bytes < min_bytes {size + 1}"
    assert result.checks == ["fresh"]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_fails_when_stale(run_dir: Path, data_dir: Path, kind: str) -> None:
    backdate(make(kind, run_dir / NAMES[kind]), -30)
    [result, _] = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert result.detail.startswith("stale: modified ")
    assert result.detail.endswith(f"before the run started {STARTED.isoformat()}")


@pytest.mark.parametrize("kind", sorted(WRONG_TYPE))
def test_kind_fails_on_the_wrong_type_of_file(run_dir: Path, data_dir: Path, kind: str) -> None:
    data, reason = WRONG_TYPE[kind]
    write(run_dir / NAMES[kind], data)
    [result, count] = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert result.detail.startswith(reason), result.detail
    assert result.sha256 is not None  # recorded all the same
    assert count.detail == "missing: 1 matched, 0 valid; min_count is 1"


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_glob_needs_min_count_valid_files(run_dir: Path, data_dir: Path, kind: str) -> None:
    ext = NAMES[kind].rsplit(".", 1)[1]
    for i in range(2):
        make(kind, run_dir / "out" / f"{i}.{ext}")
    proof = spec(path=f"out/*.{ext}", kind=kind, min_count=3)
    assert failures(check(proof, run_dir, data_dir)) == ["missing: 2 matched, 2 valid; min_count is 3"]
    make(kind, run_dir / "out" / f"2.{ext}")
    results = check(proof, run_dir, data_dir)
    assert [r.ok for r in results] == [True] * 3
    assert results[0].checks[-1] == ">= 3 files"


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_kind_max_age_judges_the_newest_match(run_dir: Path, data_dir: Path, kind: str) -> None:
    ext = NAMES[kind].rsplit(".", 1)[1]
    backdate(make(kind, run_dir / f"a.{ext}"), 10)  # fresh, and 3m old at `now`
    proof = spec(path=f"*.{ext}", kind=kind, max_age="1m")
    results = check(proof, run_dir, data_dir, now=STARTED + timedelta(seconds=190))
    [problem] = failures(results)
    assert problem.startswith("too old: newest file modified 3m ago (") and problem.endswith("), max_age is 60s")
    make(kind, run_dir / f"b.{ext}")  # a new one now
    results = check(proof, run_dir, data_dir)
    assert all(r.ok for r in results) and results[1].checks[-1] == "newest < 60s old"


def test_max_age_is_judged_at_the_injected_now(run_dir: Path, data_dir: Path) -> None:
    make("png", run_dir / "a.png")
    proof = spec(path="a.png", kind="png", max_age="1h")
    assert failures(check(proof, run_dir, data_dir)) == []
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    assert failures(check(proof, run_dir, data_dir, now=later))[0].startswith("too old: newest file modified 2h")


def test_symlink_to_a_genuine_file_outside_the_roots_is_refused_unread(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    outside = make("png", tmp_path / "elsewhere" / "shot.png")
    (run_dir / "shot.png").symlink_to(outside)
    results = check(spec(path="*.png", kind="png"), run_dir, data_dir)
    assert results[0].detail == (f"refused: escapes the run dir: resolves outside {run_dir} "
                                 f"(symlink escape to {outside})")
    assert results[0].sha256 is None and results[0].checks == []
    assert not any(r.ok for r in results)


def test_every_failing_spec_is_reported(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "shot.png", b"text, not an image")
    write(run_dir / "arbs.json", b'{"x": 1}')
    results = verify_all([spec(path="shot.png", kind="png"), spec(path="arbs.json", kind="json",
                                                                 required_keys=["opportunities"]),
                          spec(path="model.bin")], [], run_dir, data_dir, STARTED)
    summary = failure_summary(results)
    assert summary is not None
    assert summary.startswith("unproven: shot.png: not a PNG (magic bytes ")
    assert "; arbs.json: missing key opportunities (the top level has no 'opportunities'; it has x)" in summary
    assert summary.endswith("; model.bin: missing: nothing matched; min_count is 1")


# --- text and log ----------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "problem"), [
    ({"contains": "auc=0\\.7"}, None),
    ({"contains": ["^done$", "epochs"]}, None),
    ({"contains": ["^done$", "loss=", "accuracy"]}, "does not contain /loss=/, /accuracy/"),
    ({"not_contains": ["Traceback"]}, None),
    ({"not_contains": ["auc=\\d"]}, "contains /auc=\\d/ at line 2: 'auc=0.71'"),
], ids=["contains", "all-contains", "contains-missing", "not-contains", "not-contains-hit"])
def test_text_contains_and_not_contains(
    run_dir: Path, data_dir: Path, keys: dict[str, Any], problem: str | None
) -> None:
    make("text", run_dir / "report.txt")
    [result, *_] = check(spec(path="report.txt", kind="text", **keys), run_dir, data_dir)
    assert result.detail == (problem or "ok")


def test_log_tolerates_binary_bytes_but_not_an_error_line(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "run.log", b"INFO start \xff\xfe\nERROR disk full\nINFO done\n")
    proof = spec(path="run.log", kind="log", contains="done", not_contains=["^ERROR"])
    [result, _] = check(proof, run_dir, data_dir)
    assert result.detail == "contains /^ERROR/ at line 2: 'ERROR disk full'"
    assert result.checks == ["fresh", "not empty", "contains /done/"]


# --- json and jsonl --------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "problem"), [
    (["model.metrics.auc", "items.0.id"], None),
    (["model.metrics.loss"], "missing key model.metrics.loss (model.metrics has no 'loss'; it has auc)"),
    (["items.3.id"], "missing key items.3.id (items has 1 items, no index 3)"),
    (["items.id"], "missing key items.id (items is a list; use an index, not 'id')"),
    (["model.metrics.auc.value"], "missing key model.metrics.auc.value (model.metrics.auc is a number, not an object)"),
], ids=["present", "missing-leaf", "index-out-of-range", "list-needs-index", "scalar"])
def test_json_required_keys_follow_dotted_paths(
    run_dir: Path, data_dir: Path, keys: list[str], problem: str | None
) -> None:
    make("json", run_dir / "out.json")
    [result, *_] = check(spec(path="out.json", kind="json", required_keys=keys), run_dir, data_dir)
    assert result.detail == (problem or "ok")
    if problem is None:
        assert "has model.metrics.auc, items.0.id" in result.checks


SCHEMA = {"type": "object", "required": ["model", "items"],
          "properties": {"items": {"type": "array", "items": {"type": "object",
                                                              "properties": {"id": {"type": "integer"}}}}}}


def test_json_schema_relative_to_the_config_dir(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "out.schema.json").write_text(json.dumps(SCHEMA))
    proof = spec(path="out.json", kind="json", schema="schemas/out.schema.json")
    make("json", run_dir / "out.json")
    [result] = check(proof, run_dir, data_dir, config_dir=tmp_path)
    assert result.ok and result.checks[-1] == "matches schema out.schema.json"
    write(run_dir / "out.json", b'{"model": {}, "items": [{"id": "one"}]}')
    [result, _] = check(proof, run_dir, data_dir, config_dir=tmp_path)
    assert result.detail == "fails the schema out.schema.json at $.items[0].id: 'one' is not of type 'integer'"


def test_json_schema_missing_or_invalid_is_a_clear_failure(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    make("json", run_dir / "out.json")
    [result, _] = check(spec(path="out.json", kind="json", schema=str(tmp_path / "nope.json")), run_dir, data_dir)
    assert result.detail == f"cannot read the schema {tmp_path / 'nope.json'}: no such file or directory"
    (tmp_path / "bad.json").write_text('{"type": 12}')
    [result, _] = check(spec(path="out.json", kind="json", schema=str(tmp_path / "bad.json")), run_dir, data_dir)
    assert result.detail.startswith(f"the schema {tmp_path / 'bad.json'} is not a valid JSON Schema: ")


def test_jsonl_min_lines_and_blank_lines(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "ticks.jsonl", b'{"t": 1}\n\n{"t": 2}\n')
    [result] = check(spec(path="ticks.jsonl", kind="jsonl", min_lines=2), run_dir, data_dir)
    assert result.checks[-2:] == ["valid JSONL, 2 lines", ">= 2 lines"]
    [result, _] = check(spec(path="ticks.jsonl", kind="jsonl", min_lines=3), run_dir, data_dir)
    assert result.detail == "too few lines: 2 < min_lines 3"


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_image_min_width_and_height_use_the_decoded_header(run_dir: Path, data_dir: Path, kind: str) -> None:
    name = NAMES[kind]
    write(run_dir / name, (png_bytes if kind == "png" else jpeg_bytes)(1280, 720))
    [result] = check(spec(path=name, kind=kind, min_width=1280, min_height=720), run_dir, data_dir)
    label = kind.upper()
    assert result.checks[-2:] == [f"{label} 1280x720", ">= 1280x720"]
    [result, _] = check(spec(path=name, kind=kind, min_height=1080), run_dir, data_dir)
    assert result.detail == f"too small: {label} 1280x720 is 720 px high < min_height 1080"


@pytest.mark.parametrize(("kind", "reason"), [
    ("png", "truncated PNG: "), ("jpeg", "truncated JPEG: "),
])
def test_a_truncated_image_fails(run_dir: Path, data_dir: Path, kind: str, reason: str) -> None:
    whole = png_bytes(64, 64) if kind == "png" else jpeg_bytes(64, 64)
    write(run_dir / NAMES[kind], whole[: len(whole) - 20])
    [result, _] = check(spec(path=NAMES[kind], kind=kind), run_dir, data_dir)
    assert result.detail.startswith(reason)


# --- parquet and sqlite ----------------------------------------------------------------------

def test_parquet_min_rows_and_columns(run_dir: Path, data_dir: Path) -> None:
    parquet_bytes(run_dir / "ticks.parquet", rows=10)
    [result] = check(spec(path="ticks.parquet", kind="parquet", min_rows=10, columns=["ts", "price"]),
                     run_dir, data_dir)
    assert result.checks[2:] == ["Parquet 10 rows", ">= 10 rows", "columns ts, price"]
    [result, _] = check(spec(path="ticks.parquet", kind="parquet", min_rows=11), run_dir, data_dir)
    assert result.detail == "too few rows: 10 < min_rows 11"
    [result, _] = check(spec(path="ticks.parquet", kind="parquet", columns=["ts", "odds"]), run_dir, data_dir)
    assert result.detail == "missing column odds (has: price, ts)"


def test_parquet_truncated_footer_fails(run_dir: Path, data_dir: Path) -> None:
    parquet_bytes(run_dir / "ticks.parquet")
    whole = (run_dir / "ticks.parquet").read_bytes()
    write(run_dir / "ticks.parquet", whole[:-10])
    [result, _] = check(spec(path="ticks.parquet", kind="parquet"), run_dir, data_dir)
    assert result.detail == "truncated Parquet file: no PAR1 footer at the end"


def test_sqlite_table_and_min_rows(run_dir: Path, data_dir: Path) -> None:
    sqlite_db(run_dir / "trades.db", rows=5)
    [result] = check(spec(path="trades.db", kind="sqlite", table="trades", min_rows=5), run_dir, data_dir)
    assert result.checks[2:] == ["SQLite, 1 table", "table trades: 5 rows", ">= 5 rows"]
    [result, _] = check(spec(path="trades.db", kind="sqlite", table="trades", min_rows=6), run_dir, data_dir)
    assert result.detail == "too few rows in table trades: 5 < min_rows 6"
    [result, _] = check(spec(path="trades.db", kind="sqlite", table="fills"), run_dir, data_dir)
    assert result.detail == "no table 'fills' in the database (tables: trades)"


def test_sqlite_is_opened_read_only(run_dir: Path, data_dir: Path) -> None:
    sqlite_db(run_dir / "trades.db")
    before = sorted(p.name for p in run_dir.iterdir())
    [result] = check(spec(path="trades.db", kind="sqlite", table="trades"), run_dir, data_dir)
    assert result.ok and sorted(p.name for p in run_dir.iterdir()) == before  # no journal left behind


# --- command ---------------------------------------------------------------------------------

def test_command_verifier_runs_in_the_run_dir_with_the_proofwatch_env(run_dir: Path, data_dir: Path) -> None:
    script = ("import os, sys; assert os.getcwd() == os.environ['PROOFWATCH_RUN_DIR'];"
              "assert os.environ['PROOFWATCH_DATA_DIR'] == sys.argv[1]; print('checked', sys.argv[1])")
    [result] = check(spec(kind="command", command=["python", "-c", script, str(data_dir)]), run_dir, data_dir)
    assert result.ok, result.detail
    assert result.detail.startswith("exited 0 in ")
    assert result.detail.endswith(f"output (last 20 lines):\nchecked {data_dir}")
    assert result.checks == ["exit 0", "within 60s"]
    assert result.path.startswith("command: ")


def test_command_verifier_exiting_1_fails_with_its_output_tail(run_dir: Path, data_dir: Path) -> None:
    script = "import sys\nfor i in range(30): print(f'line {i}')\nprint('3 screenshots are blank', file=sys.stderr)\nsys.exit(1)"
    [result] = check(spec(kind="command", command=["python", "-c", script]), run_dir, data_dir)
    assert not result.ok
    first, *rest = result.detail.splitlines()
    assert first == "verifier exited with code 1: 3 screenshots are blank"
    assert rest == ["output (last 20 lines):", *[f"line {i}" for i in range(11, 30)], "3 screenshots are blank"]
    assert failure_summary([result]) == (f"unproven: {result.path}: verifier exited with code 1: "
                                         "3 screenshots are blank")


def test_command_verifier_hanging_past_its_timeout_is_killed_with_its_group(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pidfile)!r}, 'w').write(str(child.pid))\nprint('waiting', flush=True)\ntime.sleep(60)")
    began = time.monotonic()
    [result] = check(spec(kind="command", command=["python", "-c", script], timeout="500ms"), run_dir, data_dir)
    assert time.monotonic() - began < 5
    assert result.detail.splitlines()[0] == "timed out after 500ms (killed)"
    assert result.detail.endswith("waiting")
    assert not _alive(int(pidfile.read_text()))


def _alive(pid: int) -> bool:
    """Whether `pid` is still a live (non-zombie) process, allowing a moment for init to reap it."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state == "Z":
            return False
        time.sleep(0.02)
    return True


def test_command_that_cannot_start_fails_clearly(run_dir: Path, data_dir: Path) -> None:
    [result] = check(spec(kind="command", command="no-such-verifier --check"), run_dir, data_dir)
    assert result.detail == "cannot start the verifier 'no-such-verifier': no such file or directory"


def test_command_killed_by_a_signal(run_dir: Path, data_dir: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    [result] = check(spec(kind="command", command=["python", "-c", script]), run_dir, data_dir)
    assert result.detail == "verifier killed by SIGTERM: no output"


# --- http ------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            self.release.wait(5)
        code, body = {"/health": (200, b"status: ok\n"), "/slow": (200, b"late")}.get(
            self.path, (500, b"boom"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        _Handler.release.clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_proof_passes_when_the_endpoint_answers(server: str, run_dir: Path, data_dir: Path) -> None:
    [result] = check(spec(kind="http", url=f"{server}/health", contains="status: ok"), run_dir, data_dir)
    assert result.ok, result.detail
    assert result.path == f"{server}/health"
    assert result.checks[0] == "HTTP 200 OK" and result.checks[-1] == "body contains /status: ok/"


@pytest.mark.parametrize(("path", "keys", "problem"), [
    ("/error", {}, "answered 500 Internal Server Error"),
    ("/health", {"contains": "healthy"}, "answered 200 OK but the body does not contain /healthy/"),
    ("/slow", {"timeout": "300ms"}, "timed out after 300ms"),
], ids=["500", "lacks-contains", "slow"])
def test_http_proof_fails_on_a_bad_answer(
    server: str, run_dir: Path, data_dir: Path, path: str, keys: dict[str, Any], problem: str
) -> None:
    [result] = check(spec(kind="http", url=server + path, **keys), run_dir, data_dir)
    assert (result.ok, result.detail) == (False, problem)


def test_http_proof_fails_when_the_server_is_down(run_dir: Path, data_dir: Path) -> None:
    [result] = check(spec(kind="http", url=f"http://127.0.0.1:{closed_port()}/health"), run_dir, data_dir)
    assert not result.ok
    assert result.detail.startswith("not answering: ") and "refused" in result.detail.lower()


# --- git -------------------------------------------------------------------------------------

def git(repo: Path, *args: str, when: datetime | None = None) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{int(when.timestamp())} +0000"
    subprocess.run(["git", "-c", "user.email=job@example.invalid", "-c", "user.name=job",
                    "-c", "init.defaultBranch=main", "-C", str(repo), *args],
                   check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q")
    (path / "README").write_text("old\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "before the run", when=STARTED - timedelta(hours=1))
    return path


def test_git_proof_needs_a_commit_made_during_the_run(repo: Path, run_dir: Path, data_dir: Path) -> None:
    proof = spec(kind="git", repo=str(repo))
    [result] = check(proof, run_dir, data_dir)
    assert result.detail == (f"no commits on any branch since the run started {STARTED.isoformat()} "
                             "(min_commits is 1)")
    (repo / "model.py").write_text("fit()\n")
    git(repo, "add", "model.py")
    git(repo, "commit", "-q", "-m", "retrain: add fit")
    [result] = check(proof, run_dir, data_dir)
    assert result.ok, result.detail
    assert result.detail.startswith("1 commit on any branch since the run started; newest ")
    assert result.detail.endswith(": retrain: add fit")
    assert result.checks == [">= 1 commit during the run", "newest: retrain: add fit"]
    assert result.path == f"git:{repo}"


def test_git_proof_min_commits_and_branch(repo: Path, run_dir: Path, data_dir: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "commit", "-q", "--allow-empty", "-m", "on feature")
    assert check(spec(kind="git", repo=str(repo)), run_dir, data_dir)[0].ok
    [result] = check(spec(kind="git", repo=str(repo), branch="main"), run_dir, data_dir)
    assert result.detail.startswith("no commits on main since the run started")
    [result] = check(spec(kind="git", repo=str(repo), branch="feature", min_commits=2), run_dir, data_dir)
    assert result.detail.startswith("only 1 on feature since the run started")
    [result] = check(spec(kind="git", repo=str(repo), branch="nope"), run_dir, data_dir)
    assert result.detail == f"no branch 'nope' in {repo}"


def test_git_proof_repo_relative_to_the_run_dir_or_data_dir(run_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    [result] = check(spec(kind="git", repo="checkout"), run_dir, data_dir)
    assert result.detail == f"no such directory: {run_dir / 'checkout'}"
    (data_dir / "plain").mkdir()
    [result] = check(spec(kind="git", repo="data:plain"), run_dir, data_dir)
    assert result.detail == f"not a git repository: {data_dir / 'plain'}"


# --- sdk-declared proofs with a kind ---------------------------------------------------------

def test_declared_proofs_may_carry_a_kind(run_dir: Path, data_dir: Path) -> None:
    write(run_dir / "shots" / "a.png", b"not a png at all")
    make("json", data_dir / "out.json")
    results = verify_all([], [("shots/a.png", "png"), [str(data_dir / "out.json"), "json"], "shots/a.png"],
                         run_dir, data_dir, STARTED)
    assert [(r.path, r.kind, r.ok) for r in results] == [
        ("shots/a.png", "png", False), ("shots/a.png", "png", False), ("data:out.json", "json", True)]
    assert results[0].detail.startswith("not a PNG (magic bytes ")


@pytest.mark.parametrize(("item", "detail"), [
    (("x", "http"), "refused: a worker may declare only file proofs (kind 'http' is not one of "),
    (("x", "pngg"), "refused: a worker may declare only file proofs (kind 'pngg' is not one of "),
    ((1, 2, 3), "refused: a declared proof must be a path or (path, kind)"),
], ids=["live-kind", "unknown-kind", "malformed"])
def test_declared_proofs_that_cannot_be_verified_are_refused(
    run_dir: Path, data_dir: Path, item: Any, detail: str
) -> None:
    [result] = verify_all([], [item], run_dir, data_dir, STARTED)
    assert not result.ok and result.detail.startswith(detail)


def test_a_crashing_check_fails_its_proof_only(
    run_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import supervisor._proof_kinds as kinds

    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(kinds._CHECKERS, "png", boom)
    make("png", run_dir / "a.png")
    make("json", run_dir / "b.json")
    results = verify_all([spec(path="a.png", kind="png"), spec(path="b.json", kind="json")], [],
                         run_dir, data_dir, STARTED)
    assert [(r.path, r.ok, r.detail) for r in results] == [
        ("a.png", False, "verification crashed: RuntimeError: bug"), ("b.json", True, "ok")]


# --- pure verdicts ---------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "500ms"), (1, "1s"), (60, "60s"), (90, "90s"), (1.5, "1.5s"), (300, "5m"), (5400, "1h30m"),
    (93784, "1d2h"),
], ids=lambda v: str(v))
def test_span_reads_like_config_durations(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_pure_verdicts() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert age_problem(t0, t0 + timedelta(seconds=60), 60) is None
    assert age_problem(t0, t0 + timedelta(seconds=61), 60) == (
        "too old: newest file modified 61s ago (2026-01-01T00:00:00+00:00), max_age is 60s")
    assert size_problem(0, 0) == "empty: 0 bytes"
    assert size_problem(5, 10) == "too small: 5 bytes < min_bytes 10"
    assert lookup_problem({"a": [{"b": None}]}, "a.-1.b") is None
    assert lookup_problem({"a": {}}, "a.b") == "missing key a.b (a has no 'b'; it is empty)"


# --- config: ProofSpec validation ------------------------------------------------------------

def proof_errors(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "config.toml").write_text('[jobs.x]\ncommand = "true"\n[[jobs.x.proofs]]\n' + body)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml")
    return str(info.value).replace(str(tmp_path / "config.toml"), "config.toml").splitlines()


@pytest.mark.parametrize(("body", "errors"), [
    ('kind = "http"\n',
     ["config.toml:3: jobs.x.proofs[0].url: is required for kind http"]),
    ('kind = "command"\ntimeout = "5s"\n',
     ["config.toml:3: jobs.x.proofs[0].command: is required for kind command"]),
    ('kind = "git"\nbranch = "main"\n',
     ["config.toml:3: jobs.x.proofs[0].repo: is required for kind git"]),
    ('kind = "png"\n',
     ["config.toml:3: jobs.x.proofs[0].path: is required for kind png"]),
    ('path = "a.png"\nkind = "png"\nmin_rows = 10\n',
     ["config.toml:6: jobs.x.proofs[0].min_rows: min_rows does not apply to kind png "
      "(png takes: max_age, min_bytes, min_count, min_height, min_width, path)"]),
    ('kind = "http"\nurl = "http://127.0.0.1/h"\npath = "x"\n',
     ["config.toml:6: jobs.x.proofs[0].path: path does not apply to kind http (http takes: contains, timeout, url)"]),
    ('path = "a"\nkind = "text"\nconatins = "x"\n',
     ['config.toml:6: jobs.x.proofs[0].conatins: unknown key (did you mean "contains"?)']),
    ('path = "a"\nkind = "text"\ncontains = ["ok", "("]\n',
     ['config.toml:6: jobs.x.proofs[0].contains: "(" is not a valid regex '
      "(missing ), unterminated subpattern at position 0)"]),
    ('path = "a.db"\nkind = "sqlite"\nmin_rows = 3\n',
     ["config.toml:6: jobs.x.proofs[0].min_rows: min_rows needs table (the table whose rows to count)"]),
    ('kind = "http"\nurl = "localhost:8080"\ntimeout = "soon"\n',
     ['config.toml:5: jobs.x.proofs[0].url: "localhost:8080" is not an http(s) URL '
      '(use e.g. "http://127.0.0.1:8080/health")',
      'config.toml:6: jobs.x.proofs[0].timeout: "soon" is not a duration (use e.g. "20m")']),
    ('kind = "git"\nrepo = "."\nmin_count = 2\nbranch = "--all"\n',
     ["config.toml:6: jobs.x.proofs[0].min_count: min_count does not apply to kind git "
      "(git takes: branch, min_commits, repo)",
      'config.toml:7: jobs.x.proofs[0].branch: "--all" is not a branch name']),
    ('path = "a.json"\nkind = "json"\nrequired_keys = ["model..auc"]\n',
     ['config.toml:6: jobs.x.proofs[0].required_keys: "model..auc" is not a key path '
      '(use e.g. "model.metrics.auc" or "items.0.id")']),
], ids=["http-url", "command-command", "git-repo", "file-path", "foreign-key", "path-on-http",
        "typo", "bad-regex", "sqlite-min_rows-needs-table", "several", "git-keys", "key-path"])
def test_proof_spec_config_errors_name_the_key(tmp_path: Path, body: str, errors: list[str]) -> None:
    assert proof_errors(tmp_path, body) == errors


def test_proof_spec_accepts_every_kind_with_its_keys(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("""
[jobs.x]
command = "true"
proofs = [
  {path = "screens/*.png", kind = "png", min_count = 3, min_bytes = "10KB", max_age = "1h", min_width = 1280},
  {path = "run.log", kind = "log", contains = "done", not_contains = ["Traceback", "ERROR"]},
  {path = "data:out.json", kind = "json", required_keys = ["a.b"], schema = "schemas/out.json"},
  {path = "t.jsonl", kind = "jsonl", min_lines = 10},
  {path = "t.parquet", kind = "parquet", min_rows = 100, columns = ["ts"]},
  {path = "t.db", kind = "sqlite", table = "trades", min_rows = 1},
  {kind = "command", command = "python verify.py", timeout = "2m"},
  {kind = "http", url = "http://127.0.0.1:8080/health", contains = "ok"},
  {kind = "git", repo = "data:repo", branch = "main", min_commits = 2},
]
""")
    proofs = load_config(tmp_path / "config.toml").jobs["x"].proofs
    assert [p.kind for p in proofs] == ["png", "log", "json", "jsonl", "parquet", "sqlite", "command", "http", "git"]
    assert (proofs[0].min_bytes, proofs[0].max_age, proofs[0].min_width) == (10_000, 3600.0, 1280)
    assert proofs[1].contains == ["done"] and proofs[2].schema_ == Path("schemas/out.json")
    assert (proofs[6].command, proofs[6].timeout_seconds) == (["python", "verify.py"], 120.0)
    assert proofs[7].timeout_seconds == 10.0 and proofs[8].min_commits == 2
    assert spec(kind="command", command="true").timeout_seconds == 60.0


def test_proof_spec_is_frozen_and_forbids_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        spec(path="a", bogus=1)
    with pytest.raises(ValidationError):
        spec(path="a").min_count = 3  # type: ignore[misc]


def test_declared_kind_reaches_the_status_record(run_dir: Path, data_dir: Path) -> None:
    make("png", run_dir / "shot.png")
    [result] = verify_all([], [("shot.png", "png")], run_dir, data_dir, STARTED)
    assert result.model_dump(mode="json")["checks"] == ["fresh", "not empty", "PNG 32x24"]

