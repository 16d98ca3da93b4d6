"""Compaction: keep each `date=` directory a handful of files, never thousands.

Parts are tiered by level (in the name: `-L<level>-`). Flushes write level 0; when a date has
`fanout` parts of one level, they are merged into one part of the next level. A part holding at
least `max_rows // 2` rows is sealed and never rewritten, so no merge reads more than `max_rows`
rows (bounded memory) and each row is rewritten about log_fanout(day / flush) times. Once a
date is over (UTC), all its unsealed parts are merged: a finished day is a few sealed files plus
at most one more.

A merged part lists the names it replaces in its Parquet metadata; the replaced parts are
unlinked right after it appears, then the manifest is rewritten. After a crash anywhere in
between, `recover` finishes the job. Readers that glob the directories may, for that instant,
see both (or a part vanish under them); a consistent snapshot is the manifest's file list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

import pyarrow as pa

from workers.ingestor.store import PartFile, PartStore

log = logging.getLogger(__name__)


def sealed(part: PartFile, max_rows: int) -> bool:
    """True for a part big enough never to be merged again."""
    return part.rows >= max(max_rows // 2, 1)


def _pack(parts: list[PartFile], max_rows: int) -> list[list[PartFile]]:
    """Consecutive groups (by first ts) of at most max_rows rows; singletons are dropped."""
    groups: list[list[PartFile]] = []
    current: list[PartFile] = []
    rows = 0
    for part in sorted(parts, key=lambda p: (p.first_ts, p.path)):
        if current and rows + part.rows > max_rows:
            groups.append(current)
            current, rows = [], 0
        current.append(part)
        rows += part.rows
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


def plan(parts: Iterable[PartFile], *, fanout: int, max_rows: int,
         closed: bool) -> list[list[PartFile]]:
    """Which parts of ONE date directory to merge together (pure; no I/O)."""
    live = [p for p in parts if not sealed(p, max_rows)]
    if closed:
        return _pack(live, max_rows)
    by_level: dict[int, list[PartFile]] = defaultdict(list)
    for part in live:
        by_level[part.level].append(part)
    groups: list[list[PartFile]] = []
    for level in sorted(by_level):
        if len(by_level[level]) >= fanout:
            groups.extend(_pack(by_level[level], max_rows))
    return groups


def plan_all(parts: Iterable[PartFile], *, fanout: int, max_rows: int,
             today: str) -> list[list[PartFile]]:
    """Merge groups for every date directory; dates before `today` (UTC) are closed."""
    by_dir: dict[str, list[PartFile]] = defaultdict(list)
    for part in parts:
        by_dir[part.date_dir].append(part)
    groups: list[list[PartFile]] = []
    for directory, members in sorted(by_dir.items()):
        date = directory.rsplit("date=", 1)[-1]
        groups.extend(plan(members, fanout=fanout, max_rows=max_rows, closed=date < today))
    return groups


def merge(store: PartStore, group: list[PartFile]) -> PartFile:
    """Write one part holding every row of `group` (sorted by ts); the inputs stay until unlinked."""
    tables = [store.read(p.path).replace_schema_metadata(None) for p in group]
    table = pa.concat_tables(tables)
    level = max(p.level for p in group) + 1
    merged = store.write_part(group[0].date_dir, table, level=level,
                              replaces=[p.path.rsplit("/", 1)[1] for p in group])
    log.info("compacted %d parts (%d rows) of %s into %s", len(group), merged.rows,
             group[0].date_dir, merged.path)
    return merged


def recover(store: PartStore, listed: dict[str, PartFile]) -> tuple[dict[str, PartFile], list[str], list[str]]:
    """Reconcile the manifest's parts with the disk after a crash.

    Returns (parts, adopted, dropped): parts on disk that hold data exactly once (manifest
    entries, plus orphans a crash wrote before the manifest was updated), the paths adopted,
    and the paths deleted or forgotten (replaced by a compacted part, or missing from disk).
    """
    on_disk = set(store.scan())
    parts = {rel: p for rel, p in listed.items() if rel in on_disk}
    dropped = [rel for rel in listed if rel not in on_disk]
    for rel in dropped:
        log.warning("%s is listed in the manifest but missing on disk; forgetting it", rel)
    orphans = sorted(on_disk - set(listed))
    if not orphans:
        return parts, [], dropped
    dirs = {rel.rsplit("/", 1)[0] for rel in orphans}
    replaced: set[str] = set()
    for rel in on_disk:
        directory, name = rel.rsplit("/", 1)
        if directory in dirs and "-L0-" not in name:
            replaced.update(f"{directory}/{old}" for old in store.replaces(rel))
    adopted = []
    for rel in orphans:
        if rel in replaced:
            continue
        parts[rel] = store.describe(rel)
        adopted.append(rel)
        log.warning("adopted %s (%d rows): written before a crash, not in the manifest",
                    rel, parts[rel].rows)
    gone = sorted(replaced & on_disk)
    for rel in gone:
        parts.pop(rel, None)
    store.unlink(gone)
    return parts, adopted, dropped + gone
