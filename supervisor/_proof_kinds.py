"""What a file proof's content must be, per kind: text/log, json, jsonl, png, jpeg, parquet, sqlite.

`check_content` runs after the shared checks (contained, fresh, big enough) and either appends
what it verified to `checks` or raises `ProofFailed` with the reason. Heavy readers (pyarrow,
jsonschema) are imported inside the functions that need them, so the daemon starts without them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from policies.proofs import lookup_problem, minimum_problem
from supervisor._proof_images import ImageError, jpeg_size, png_size, show_magic
from supervisor.config import ProofSpec

__all__ = ["ProofFailed", "check_content"]

_EXCERPT = 160
SQLITE_MAGIC = b"SQLite format 3\x00"
PARQUET_MAGIC = b"PAR1"


class ProofFailed(Exception):
    """Raised when an artifact fails a check; `detail` is the one-line reason for the operator."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def check_content(spec: ProofSpec, path: Path, checks: list[str], *, config_dir: Path | None = None) -> None:
    """Check `path` as a `spec.kind` artifact; append passed checks or raise ProofFailed."""
    checker = _CHECKERS.get(spec.kind)
    if checker is not None:
        checker(spec, path, checks, config_dir)


def _fail_if(problem: str | None) -> None:
    if problem is not None:
        raise ProofFailed(problem)


def _short(text: str, limit: int = _EXCERPT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- text and log --------------------------------------------------------------------------------

def _text(spec: ProofSpec, path: Path, checks: list[str], _config_dir: Path | None) -> None:
    data = path.read_bytes()
    if spec.kind == "text":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProofFailed(f"not UTF-8 text (invalid byte {data[exc.start]:#04x} at offset {exc.start})") from None
        checks.append("UTF-8 text")
    else:  # a log may hold a stray binary byte; it still proves what it says
        text = data.decode("utf-8", "replace")
    missing = [f"/{p}/" for p in spec.contains if re.search(p, text, re.MULTILINE) is None]
    if missing:
        raise ProofFailed(f"does not contain {', '.join(missing)}")
    checks.extend(f"contains /{p}/" for p in spec.contains)
    for pattern in spec.not_contains:
        if (match := re.search(pattern, text, re.MULTILINE)) is not None:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            line = text.count("\n", 0, match.start()) + 1
            raise ProofFailed(f"contains /{pattern}/ at line {line}: "
                              f"{_short(text[start:end if end >= 0 else None])!r}")
        checks.append(f"no /{pattern}/")


# --- json and jsonl ------------------------------------------------------------------------------

def _json(spec: ProofSpec, path: Path, checks: list[str], config_dir: Path | None) -> None:
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise ProofFailed(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise ProofFailed("not valid JSON: not UTF-8 text") from None
    checks.append("valid JSON")
    missing = [p for key in spec.required_keys if (p := lookup_problem(doc, key)) is not None]
    if missing:
        raise ProofFailed("; ".join(missing))
    if spec.required_keys:
        checks.append("has " + ", ".join(spec.required_keys))
    if spec.schema_ is not None:
        _match_schema(doc, spec.schema_, checks, config_dir)


def _match_schema(doc: object, schema: Path, checks: list[str], config_dir: Path | None) -> None:
    import jsonschema  # type: ignore[import-untyped]  # lazily: only configs with a schema pay

    where = schema.expanduser()
    if not where.is_absolute():
        where = (config_dir if config_dir is not None else Path.cwd()) / where
    try:
        schema_doc = json.loads(where.read_bytes())
    except OSError as exc:
        raise ProofFailed(f"cannot read the schema {where}: {(exc.strerror or str(exc)).lower()}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProofFailed(f"the schema {where} is not valid JSON: {exc}") from None
    validator_class = jsonschema.validators.validator_for(schema_doc)
    try:
        validator_class.check_schema(schema_doc)
    except jsonschema.SchemaError as exc:
        raise ProofFailed(f"the schema {where} is not a valid JSON Schema: {_short(exc.message)}") from None
    error = jsonschema.exceptions.best_match(validator_class(schema_doc).iter_errors(doc))
    if error is not None:
        raise ProofFailed(f"fails the schema {where.name} at {error.json_path}: {_short(error.message)}")
    checks.append(f"matches schema {where.name}")


def _jsonl(spec: ProofSpec, path: Path, checks: list[str], _config_dir: Path | None) -> None:
    count = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise ProofFailed(f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}") from None
            except UnicodeDecodeError:
                raise ProofFailed(f"line {number} is not valid JSON: not UTF-8 text") from None
            count += 1
    if count == 0:
        raise ProofFailed("no JSON lines: the file holds only blank lines")
    checks.append(f"valid JSONL, {count} line{'s' if count != 1 else ''}")
    _fail_if(minimum_problem("lines", count, spec.min_lines, "min_lines"))
    if spec.min_lines is not None:
        checks.append(f">= {spec.min_lines} lines")


# --- images --------------------------------------------------------------------------------------

def _image(spec: ProofSpec, path: Path, checks: list[str], _config_dir: Path | None) -> None:
    label, reader = ("PNG", png_size) if spec.kind == "png" else ("JPEG", jpeg_size)
    with path.open("rb") as f:
        try:
            width, height = reader(f, path.stat().st_size)
        except ImageError as exc:
            raise ProofFailed(str(exc)) from None
    checks.append(f"{label} {width}x{height}")
    for what, have, key, minimum in (("wide", width, "min_width", spec.min_width),
                                     ("high", height, "min_height", spec.min_height)):
        if minimum is not None and have < minimum:
            raise ProofFailed(f"too small: {label} {width}x{height} is {have} px {what} < {key} {minimum}")
    if spec.min_width is not None or spec.min_height is not None:
        checks.append(f">= {spec.min_width or 1}x{spec.min_height or 1}")


# --- parquet and sqlite --------------------------------------------------------------------------

def _parquet(spec: ProofSpec, path: Path, checks: list[str], _config_dir: Path | None) -> None:
    with path.open("rb") as f:
        head = f.read(4)
        f.seek(max(0, path.stat().st_size - 4))
        tail = f.read(4)
    if head != PARQUET_MAGIC:
        raise ProofFailed(f"not a Parquet file (magic bytes {show_magic(head)}; "
                          f"Parquet starts {show_magic(PARQUET_MAGIC)})")
    if tail != PARQUET_MAGIC:
        raise ProofFailed("truncated Parquet file: no PAR1 footer at the end")
    import pyarrow  # type: ignore[import-untyped]  # lazily: metadata only, parquet proofs only
    import pyarrow.parquet  # type: ignore[import-untyped]

    try:
        meta = pyarrow.parquet.read_metadata(path)
        names = set(meta.schema.to_arrow_schema().names)
    except (pyarrow.ArrowException, OSError) as exc:
        raise ProofFailed(f"unreadable Parquet metadata: {_short(str(exc))}") from None
    names |= {meta.schema.column(i).path for i in range(meta.num_columns)}
    checks.append(f"Parquet {meta.num_rows} rows")
    _fail_if(minimum_problem("rows", meta.num_rows, spec.min_rows, "min_rows"))
    if spec.min_rows is not None:
        checks.append(f">= {spec.min_rows} rows")
    missing = [c for c in spec.columns if c not in names]
    if missing:
        have = ", ".join(sorted(meta.schema.to_arrow_schema().names))
        raise ProofFailed(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (has: {have})")
    if spec.columns:
        checks.append("columns " + ", ".join(spec.columns))


def _sqlite(spec: ProofSpec, path: Path, checks: list[str], _config_dir: Path | None) -> None:
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise ProofFailed(f"not an SQLite database (magic bytes {show_magic(head)})")
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise ProofFailed(f"cannot open the database read-only: {exc}") from None
    try:
        tables = [row[0] for row in con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")]
        checks.append(f"SQLite, {len(tables)} table{'s' if len(tables) != 1 else ''}")
        if spec.table is None:
            return
        found = next((t for t in tables if t.lower() == spec.table.lower()), None)
        if found is None:
            raise ProofFailed(f"no table {spec.table!r} in the database "
                              f"(tables: {', '.join(tables) if tables else 'none'})")
        quoted = '"' + found.replace('"', '""') + '"'
        (rows,) = con.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()
    except sqlite3.Error as exc:
        raise ProofFailed(f"cannot read the database: {exc}") from None
    finally:
        con.close()
    checks.append(f"table {found}: {rows} rows")
    _fail_if(minimum_problem(f"rows in table {found}", rows, spec.min_rows, "min_rows"))
    if spec.min_rows is not None:
        checks.append(f">= {spec.min_rows} rows")


_Checker = Callable[[ProofSpec, Path, list[str], Path | None], None]
_CHECKERS: dict[str, _Checker] = {
    "text": _text, "log": _text, "json": _json, "jsonl": _jsonl, "png": _image, "jpeg": _image,
    "parquet": _parquet, "sqlite": _sqlite,
}
