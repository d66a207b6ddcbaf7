"""Reading message files: CSV, TSV, JSON Lines and Parquet, chosen by extension, with named or detected columns.

`read_message_file(path, text_column, label_column)` gives every row as strings in the columns
`raw_text, label, source` (a missing value, JSON `null` or Parquet null, becomes ""), plus counts of
rows that could not be parsed (`malformed`). Stage 1 reads RAW_DATA_FILE with it and stage 3 its fixed
evaluation files (TEST_FILE, VAL_FILE), so both accept the same formats and column names.

Whole-file problems (missing, empty, wrong extension, unreadable, a named column absent) raise one-line
`PipelineError`s; single bad rows are counted, never fatal: undecodable bytes survive as surrogate escapes
for the caller to count as `non_utf8`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from intent_pipeline.errors import PipelineError
from intent_pipeline.masking import LABEL_COLUMNS, TEXT_COLUMNS, find_column

# Extension -> format; the extension decides, never the content, so a mislabelled file fails loudly.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
SUPPORTED = ", ".join(FORMATS)
ROW_COLUMNS = ["raw_text", "label", "source"]
# Python's csv module refuses fields over 128 KiB; longer messages must reach the `too_long` count.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


def file_format(path: Path) -> str:
    """'csv', 'tsv', 'jsonl' or 'parquet' by the file's extension, or a one-line error naming the supported ones."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        found = f"'{path.suffix}'" if path.suffix else "no extension"
        raise PipelineError(f"{path} has {found}: supported input files are {SUPPORTED}")
    return kind


def read_message_file(
    path: Path, text_column: str = "", label_column: str = "", *, what: str = "input file", fix: str = ""
) -> tuple[pd.DataFrame, Counter]:
    """Rows (raw_text, label, source) as strings and counts of rows skipped while parsing.

    `text_column` / `label_column` name the columns; empty means: detect one of TEXT_COLUMNS /
    LABEL_COLUMNS. `source` is the file's `source` column when it has one, else the file name.
    `what` and `fix` word the errors ("test file", "set TEST_FILE").
    """
    hint = f" ({fix})" if fix else ""
    if not path.is_file():
        raise PipelineError(f"{what} not found: {path}{hint}")
    kind = file_format(path)
    if path.stat().st_size == 0:
        raise PipelineError(f"{what} {path} is empty")
    if kind == "parquet":
        frame, skipped = _read_parquet(path, text_column, label_column)
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise PipelineError(f"{what} {path} is empty")
        # surrogateescape keeps undecodable bytes as markers, so one bad row is skipped, not the file.
        decoded = raw.decode("utf-8-sig", errors="surrogateescape")
        frame, skipped = _parse_jsonl(decoded, path) if kind == "jsonl" else _parse_csv(
            decoded, path, "\t" if kind == "tsv" else ",")
    text_col, label_col = resolve_columns(frame.columns, text_column, label_column, str(path))
    source_col = next((c for c in frame.columns if str(c).strip().lower() == "source"), None)
    rows = pd.DataFrame({
        "raw_text": _strings(frame[text_col]),
        "label": _strings(frame[label_col]),
        "source": _strings(frame[source_col]) if source_col is not None else path.name,
    }, columns=ROW_COLUMNS)
    return rows, skipped


def _strings(column: pd.Series) -> pd.Series:
    # object dtype: Arrow-backed strings cannot hold the undecodable-byte markers.
    return pd.Series([as_text(v) for v in column], index=column.index, dtype=object)


def resolve_columns(columns: Sequence[object], text_column: str, label_column: str, where: str) -> tuple[str, str]:
    """(text column, label column): the named ones (trimmed, case-insensitive) or the detected ones."""
    return (_column(columns, text_column, TEXT_COLUMNS, "text", where),
            _column(columns, label_column, LABEL_COLUMNS, "label", where))


def _column(columns: Sequence[object], named: str, candidates: Sequence[str], what: str, where: str) -> str:
    flag = f"--{what}-column / {what.upper()}_COLUMN"
    if named:
        by_name = {str(c).strip().lower(): c for c in columns}
        if named.strip().lower() in by_name:
            return by_name[named.strip().lower()]
        raise PipelineError(f"{where} has no column {named!r} ({flag}): found {', '.join(map(str, columns)) or 'none'}")
    try:
        return find_column(columns, candidates, what, where)
    except PipelineError as exc:
        raise PipelineError(f"{exc}; or name it with {flag}") from None


def as_text(value: object) -> str:
    """A cell as a string: missing values (None, NaN) are "", numbers keep their plain form (3, not 3.0)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if pd.isna(value) is True:
        return ""
    return str(value)


# ---- CSV and TSV ---------------------------------------------------------------------------------


def _parse_csv(decoded: str, path: Path, delimiter: str) -> tuple[pd.DataFrame, Counter]:
    """Records of the CSV/TSV text as strings; rows with more fields than the header count as `malformed`.

    A literal quote inside a field (`My 5" screen broke`) is text. Only a quoted field left open
    at the end of the file refuses the file: it swallowed every row after it, so no count could be trusted.
    """
    kind = "TSV" if delimiter == "\t" else "CSV"
    header_line = decoded.split("\n", 1)[0]
    if has_undecodable(header_line):
        raise PipelineError(f"{path} is not UTF-8 text (its header has undecodable bytes): re-save it as UTF-8")
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(decoded), delimiter=delimiter, skipinitialspace=True)
    records, starts, line = [], [], 0
    try:
        for record in reader:
            if record:  # blank lines are no rows
                records.append(record)
                starts.append(line)
            line = reader.line_num
    except csv.Error as exc:
        raise PipelineError(f"{path} is not a readable {kind} file: {exc} (line {reader.line_num})") from None
    if not records:
        raise PipelineError(f"{path} is empty")
    if line - starts[-1] > 1 and _ends_inside_quotes(decoded, starts[-1], delimiter):
        raise PipelineError(
            f"{path} is not a readable {kind} file: the double quote opened on line {starts[-1] + 1} is never "
            "closed and swallows the rest of the file"
        )
    header, rows = records[0], records[1:]
    skipped: Counter = Counter(malformed=sum(len(r) > len(header) for r in rows))
    # Short rows leave their missing fields empty: counted as empty text or missing label later.
    kept = [r + [""] * (len(header) - len(r)) for r in rows if len(r) <= len(header)]
    # object dtype: Arrow-backed strings cannot hold the undecodable-byte markers.
    frame = pd.DataFrame(kept, columns=[h.strip() for h in header], dtype=object)
    return frame, skipped


def _ends_inside_quotes(decoded: str, first_line: int, delimiter: str) -> bool:
    tail = "".join(io.StringIO(decoded).readlines()[first_line:])
    try:
        for _ in csv.reader(io.StringIO(tail), delimiter=delimiter, skipinitialspace=True, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def has_undecodable(text: str) -> bool:
    """Whether `text` holds bytes that were not UTF-8 (kept as surrogate escapes by the reader)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


# ---- JSON Lines ------------------------------------------------------------------------------------


def _parse_jsonl(decoded: str, path: Path) -> tuple[pd.DataFrame, Counter]:
    """One JSON object per line; a line that is not one counts as `malformed`, unless none is (wrong format)."""
    records: list[dict] = []
    skipped: Counter = Counter()
    first_error = ""
    for number, line in enumerate(decoded.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            record, first_error = None, first_error or f"line {number}: {str(exc).splitlines()[0]}"
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped["malformed"] += 1
            first_error = first_error or f"line {number} is not a JSON object"
    if not records:
        raise PipelineError(f"{path} is not a readable JSON Lines file (one JSON object per line): {first_error}")
    columns = list(dict.fromkeys(key for record in records for key in record))
    frame = pd.DataFrame([[record.get(c) for c in columns] for record in records], columns=columns, dtype=object)
    return frame, skipped


# ---- Parquet ---------------------------------------------------------------------------------------


def _read_parquet(path: Path, text_column: str, label_column: str) -> tuple[pd.DataFrame, Counter]:
    """Only the columns needed, as Python values (nulls stay None: no NaN-to-float casting of labels)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PipelineError(f"reading {path} needs pyarrow: pip install pyarrow (or convert it to CSV)") from None
    try:
        names = pq.read_schema(path).names
        text_col, label_col = resolve_columns(names, text_column, label_column, str(path))
        wanted = list(dict.fromkeys([text_col, label_col, *(n for n in names if n.strip().lower() == "source")]))
        table = pq.read_table(path, columns=wanted)
    except PipelineError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for a damaged file
        raise PipelineError(f"{path} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    if table.num_rows == 0:
        raise PipelineError(f"{path} is empty (a Parquet file with no rows)")
    frame = pd.DataFrame({name: pd.Series(table.column(name).to_pylist(), dtype=object) for name in wanted})
    return frame, Counter()
