"""status/store.py + status/models.py: the atomic writer, the reader, and the JSON Schema."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from status.models import (
    SCHEMA_VERSION,
    AlertStatus,
    HostStatus,
    JobState,
    JobStatus,
    ProofStatus,
    RunSummary,
    Severity,
    StatusDocument,
    SupervisorStatus,
    status_json_schema,
)
from status.store import StatusFileError, dump_status, read_status, write_atomic, write_status

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

TOP_FIELDS = ["schema", "updated_at", "supervisor", "host", "jobs", "alerts", "recent"]
JOB_FIELDS = [
    "state", "run_id", "pid", "started_at", "last_heartbeat_at", "last_progress_at", "progress",
    "phase", "message", "restarts", "exit_code", "error", "proofs",
]
ALERT_FIELDS = ["key", "job", "severity", "title", "detail", "first_seen", "last_seen", "count"]


def make_doc() -> StatusDocument:
    return StatusDocument(
        updated_at=T0,
        supervisor=SupervisorStatus(pid=4242, version="0.1.0", started_at=T0 - timedelta(minutes=5),
                                    config="/etc/proofwatch/config.toml", host="vm",
                                    socket="/run/proofwatch.sock"),
        host=HostStatus(score=72, label="DEGRADED", reasons=["disk / at 91%"], sample={"cpu": 40.5}),
        jobs={
            "ingestor": JobStatus(
                state=JobState.RUNNING, kind="service", run_id="8bdc51", pid=3670,
                started_at=T0 - timedelta(minutes=4), last_heartbeat_at=T0,
                last_progress_at=T0 - timedelta(seconds=2), progress={"ticks": 32.0},
                phase="stream", message="tick 32", restarts=2,
            ),
            "retrain": JobStatus(
                state=JobState.FAILED, kind="task", run_id="3c3e96", exit_code=0,
                error="unproven: model.joblib: missing: nothing matched; min_count is 1",
                proofs=[ProofStatus(path="model.joblib", kind="file", ok=False,
                                    detail="missing: nothing matched; min_count is 1")],
            ),
        },
        alerts=[AlertStatus(key="retrain:unproven", job="retrain", severity=Severity.CRITICAL,
                            title="retrain: exit 0 but unproven", detail="model.joblib: missing",
                            first_seen=T0 - timedelta(minutes=1), last_seen=T0, count=3)],
        recent=[RunSummary(job="retrain", run_id="3c3e96", state=JobState.FAILED,
                           started_at=T0 - timedelta(minutes=3), ended_at=T0 - timedelta(minutes=1),
                           exit_code=0, error="unproven")],
    )


def test_status_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    doc = make_doc()
    write_status(path, doc)
    assert read_status(path) == doc
    raw = json.loads(path.read_text())
    assert raw["schema"] == SCHEMA_VERSION
    assert "schema_" not in raw
    assert raw["jobs"]["ingestor"]["state"] == "RUNNING"
    assert raw["alerts"][0]["severity"] == "critical"


def test_write_atomic_leaves_only_the_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    big = dump_status(make_doc())
    for i in range(20):
        write_atomic(path, big + b" " * i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    assert path.read_bytes() == big + b" " * 19
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by people and jq


def test_write_atomic_failure_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_atomic(path, b'{"old": true}')
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert path.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_read_status_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    with pytest.raises(StatusFileError, match=r"no such file \(is the daemon started\?\)") as info:
        read_status(path)
    assert str(path) in str(info.value)


def test_read_status_corrupt_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_bytes(dump_status(make_doc())[:200])  # torn write
    with pytest.raises(StatusFileError) as info:
        read_status(path)
    assert str(info.value).startswith(f"{path}: not valid JSON")


def _mutilated(tmp_path: Path, drop: list[str]) -> Path:
    doc = json.loads(dump_status(make_doc()))
    node: Any = doc
    for key in drop[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[drop[-1]]
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        (["updated_at"], "updated_at"),
        (["supervisor", "pid"], "supervisor.pid"),
        (["jobs", "ingestor", "state"], "jobs.ingestor.state"),
        (["alerts", "0", "first_seen"], "alerts.0.first_seen"),
    ],
    ids=["top-level", "supervisor", "job-state", "alert"],
)
def test_read_status_missing_field_names_path_and_field(
    tmp_path: Path, drop: list[str], field: str
) -> None:
    path = _mutilated(tmp_path, drop)
    with pytest.raises(StatusFileError) as info:
        read_status(path)
    assert str(info.value) == f"{path}: {field}: Field required"


def test_read_status_rejects_an_unknown_state(tmp_path: Path) -> None:
    doc = json.loads(dump_status(make_doc()))
    doc["jobs"]["ingestor"]["state"] = "DONE"
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(StatusFileError, match=r"jobs\.ingestor\.state: "):
        read_status(path)


def _properties(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        node = schema["$defs"][name]
    return node["properties"]


def test_status_schema_has_the_field_names_design_promises() -> None:
    schema = status_json_schema()
    top = schema["properties"]
    assert set(TOP_FIELDS) <= set(top)
    assert {"updated_at", "supervisor"} <= set(schema["required"])
    job = _properties(schema, top["jobs"]["additionalProperties"])
    assert set(JOB_FIELDS) <= set(job)
    alert = _properties(schema, top["alerts"]["items"])
    assert set(ALERT_FIELDS) <= set(alert)
    states = schema["$defs"]["JobState"]["enum"]
    assert states == [s.value for s in JobState]


def test_status_schema_is_self_contained_json() -> None:
    schema = status_json_schema()
    text = json.dumps(schema)  # serialisable as shipped
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs, text[:200]
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], f"dangling {ref}"


def test_status_schema_validates_a_real_document() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = status_json_schema()
    jsonschema.validators.validator_for(schema).check_schema(schema)
    doc = json.loads(dump_status(make_doc()))
    jsonschema.validate(doc, schema)
    doc["jobs"]["ingestor"]["state"] = "DONE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_the_status_bytes_are_the_pretty_json_text_and_a_newline() -> None:
    """dump_status serialises straight to bytes (no str copies); the file's text is unchanged:
    pretty, by alias, non-ASCII kept as UTF-8, one trailing newline."""
    doc = make_doc()
    doc.jobs["ingestor"].message = "café ✓ — 東京"
    data = dump_status(doc)
    assert data == (doc.model_dump_json(by_alias=True, indent=2) + "\n").encode()
    assert data.endswith(b"}\n") and "café ✓ — 東京".encode() in data
