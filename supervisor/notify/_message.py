"""A planned `Notification` as the JSON payload every sink receives, and as text for people.

Payload (schema 1): {"source", "schema", "id", "sink", "created_at", "severity", "title",
"text", "alerts": [item, ...]}; each item has key, job, run_id, event (new | repeat |
escalated | resolved), severity, previous_severity, title, detail, state, first_seen,
last_seen, count, at, inhibited_by (the host alert it is attached to, or null).
"""

from __future__ import annotations

from typing import Any

from policies.alerting import Notification

SCHEMA = 1
_EVENT_PREFIX = {"new": "", "repeat": "still firing: ", "escalated": "escalated: ",
                 "resolved": "resolved: "}


def to_payload(note: Notification) -> dict[str, Any]:
    """The JSON object stored in the outbox and sent to the sink."""
    data = note.model_dump(mode="json")
    payload: dict[str, Any] = {
        "source": "proofwatch", "schema": SCHEMA, "id": data["id"], "sink": data["sink"],
        "created_at": data["created_at"], "severity": data["severity"],
        "title": "", "text": "", "alerts": list(data["items"]),
    }
    payload["title"], payload["text"] = render(payload)
    return payload


def _headline(item: dict[str, Any]) -> str:
    return f"{_EVENT_PREFIX.get(item['event'], '')}{item['title']}"


def render(payload: dict[str, Any]) -> tuple[str, str]:
    """(title, body) for people, from a payload (also one loaded back from the outbox)."""
    items: list[dict[str, Any]] = payload.get("alerts", [])
    primary = [i for i in items if not i.get("inhibited_by")]
    sev = str(payload.get("severity", "info")).upper()
    if len(primary) == 1:
        title = f"[{sev}] {_headline(primary[0])}"
    else:
        first = _headline(primary[0]) if primary else ""
        title = f"[{sev}] {len(primary)} alerts: {first} and {max(0, len(primary) - 1)} more"
    lines: list[str] = []
    for item in primary:
        lines.append(_line(item))
        for caused in (i for i in items if i.get("inhibited_by") == item["key"]):
            lines.append("  caused by it: " + _line(caused).replace("\n", "\n  "))
    return title, "\n".join(lines)


def _line(item: dict[str, Any]) -> str:
    sev = item["severity"]
    if item["event"] == "escalated" and item.get("previous_severity"):
        sev = f"{item['previous_severity']} -> {sev}"
    head = f"[{sev}] {_headline(item)} ({item['key']}, seen {item['count']}x since {item['first_seen']})"
    detail = str(item.get("detail") or "").strip()
    return head + ("\n    " + detail.replace("\n", "\n    ") if detail else "")
