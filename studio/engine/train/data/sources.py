"""Files in: JSON / JSONL / CSV / Parquet files, folders of them, ``save_to_disk`` folders and hub
names, read with Hugging Face ``datasets``, as plain row dicts with their line numbers.

``datasets`` does the reading (its JSON reader takes rows whose columns change type from row
to row — a user turn's content as a list, the assistant's as a string — as a ``Json``
column; Parquet ``Image`` columns come back as ``{"bytes", "path"}`` cells, undecoded, so
:mod:`.media_refs` writes the original bytes once). What ``datasets`` cannot say well, this
module says: a malformed JSON/JSONL file is named by its first bad line and column (the
error ``datasets`` raises names neither), an empty file is called empty.

Columns a row does not have come back from ``datasets`` as ``None``; they are dropped again
so a row holds exactly the keys it was written with.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from studio.errors import DataError
from studio.engine.train.data.formats import DATA_EXTS, Problem

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class Source:
    """One file's (or ``datasets`` folder's) rows.

    Attributes:
        path: the file, the ``save_to_disk`` folder, or the hub cache folder.
        base: the folder media paths resolve against (the file's folder).
        kind: ``"jsonl"``, ``"json"``, ``"csv"``, ``"parquet"``, ``"datasets folder"``, ``"hub"``.
        columns: the column names.
        problems: invalid JSONL lines skipped in lenient mode.
    """

    path: Path
    base: Path
    kind: str
    columns: list[str]
    _ds: Any = None
    _records: list | None = None
    _lines: list | None = None
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._records) if self._records is not None else len(self._ds)

    def rows(self) -> Iterator[tuple[int, dict, int | None]]:
        """``(1-based row, record, line or None)`` for every row, in file order (batched, so a
        Parquet file of images is never all in memory)."""
        lines = self._lines or []
        if self._records is not None:
            for i, rec in enumerate(self._records):
                yield i + 1, rec, (lines[i] if i < len(lines) else None)
            return
        i = 0
        for batch in self._ds.iter(batch_size=256):
            keys = list(batch)
            for j in range(len(batch[keys[0]]) if keys else 0):
                rec = {k: batch[k][j] for k in keys if batch[k][j] is not None}
                yield i + 1, rec, (lines[i] if i < len(lines) else None)
                i += 1

    def first(self) -> dict:
        """The first row (``{}`` for none)."""
        return next((rec for _, rec, _ in self.rows()), {})


@contextlib.contextmanager
def _quiet_datasets():
    """No progress bars or info logs from ``datasets`` while reading (restored after)."""
    import datasets
    from datasets.utils import logging as dlog

    bars = datasets.is_progress_bar_enabled()
    level = dlog.get_verbosity()
    datasets.disable_progress_bars()
    dlog.set_verbosity_error()
    try:
        yield datasets
    finally:
        dlog.set_verbosity(level)
        if bars:
            datasets.enable_progress_bars()


def _undecoded(ds):
    """``ds`` with its Image/Video/Audio features set not to decode (cells stay ``{"bytes", "path"}``)."""
    import copy

    from datasets import Audio, Features, Image, LargeList, List, Video

    found = []

    def visit(f):
        if isinstance(f, (Image, Audio, Video)):
            if f.decode:
                f.decode = False
                found.append(f)
        elif isinstance(f, (List, LargeList)):
            visit(f.feature)
        elif isinstance(f, dict):
            for v in f.values():
                visit(v)

    feats = copy.deepcopy(ds.features)
    visit(feats)
    return ds.cast(Features(feats)) if found else ds


def read_source(path: Path, *, problems: list | None = None) -> Source:
    """Read one ``.jsonl`` / ``.json`` / ``.csv`` / ``.parquet`` file with ``datasets``.

    Args:
        path: the file.
        problems: a list to collect invalid JSONL lines in (lenient: the other rows are read);
            None raises on the first one.

    Raises:
        DataError: empty file, invalid JSON (``line N: what (column C)``), a JSON document that
            is not a list of rows, unreadable CSV/Parquet, no rows.
    """
    ext = path.suffix.lower()
    if ext not in _BUILDERS:
        raise DataError(f"{path.name}: unsupported file type; use .jsonl, .json, .csv or .parquet.")
    if path.stat().st_size == 0 or (ext in (".jsonl", ".json", ".csv") and not _has_text(path)):
        raise DataError(f"{path.name} is empty; add rows (one JSON object per line for .jsonl).")
    src = Source(path=path, base=path.parent, kind=ext[1:], columns=[])
    kw, records = _json_layout(path) if ext == ".json" else ({}, None)
    if ext == ".csv":  # every cell read as text ("007" stays "007"); empty cells stay ""
        kw = {"features": _csv_text_features(path), "keep_default_na": False}
    if records is None:
        try:
            with _quiet_datasets() as datasets:
                ds = datasets.load_dataset(_BUILDERS[ext], data_files=str(path), split="train", **kw)
                ds = _undecoded(ds)
        except Exception as e:  # noqa: BLE001 - datasets/pyarrow raise many types for bad files
            if ext not in (".jsonl", ".json"):
                raise DataError(f"{path.name}: not a readable {ext[1:].upper()} file ({_first_line(e)}).") from None
            own: list = []
            records = _json_fallback(path, ext, own if problems is not None else None)
            src.problems = own
            if problems is not None:
                problems.extend(own)
        else:
            src._ds = ds
            src.columns = list(ds.column_names)
            if ext == ".jsonl":
                src._lines = _nonblank_lines(path, len(ds))
            elif ext == ".csv":  # JSON text in cells (list/dict columns), empty cells dropped
                src._records = [{k: _maybe_json(v) for k, v in r.items() if v not in ("", None)}
                                for r in ds.to_list()]
                src._lines = [i + 2 for i in range(len(src._records))]
    if records is not None:
        src._lines = [r.pop("__line__", None) for r in records]
        src._records = records
        src.columns = sorted({k for r in records for k in r})
    if len(src) == 0 and not src.problems:
        raise DataError(f"{path.name} has no rows; add at least one example.")
    return src


def read_folder(path: Path) -> Source:
    """A ``datasets.save_to_disk`` folder (``train`` split of a DatasetDict, else the first)."""
    with _quiet_datasets() as datasets:
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path} is not a readable datasets folder ({_first_line(e)}).") from None
        if hasattr(ds, "keys") and not hasattr(ds, "features"):  # DatasetDict
            ds = ds["train" if "train" in ds else next(iter(ds.keys()))]
        ds = _undecoded(ds)
    return Source(path=path, base=path, kind="datasets folder", columns=list(ds.column_names), _ds=ds)


def read_hub(name: str) -> Source:
    """A hub dataset's ``train`` split (only when a hub is reachable); media cache under
    ``~/.cache/glm4v-studio/datasets/<owner>__<name>``.

    Raises: DataError offline or when the hub refuses.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(f"{name!r} looks like a hub dataset, but the hub is offline here; save it with datasets' "
                        f"save_to_disk on a connected machine and pass that folder.")
    with _quiet_datasets() as datasets:
        try:
            ds = _undecoded(datasets.load_dataset(name, split="train"))
        except Exception as e:  # noqa: BLE001
            raise DataError(f"Could not load hub dataset {name!r}: {_first_line(e)}") from None
    cache = Path.home() / ".cache" / "glm4v-studio" / "datasets" / name.replace("/", "__")
    cache.mkdir(parents=True, exist_ok=True)
    return Source(path=cache, base=cache, kind="hub", columns=list(ds.column_names), _ds=ds)


def open_sources(path_or_dir: str | os.PathLike, *, problems: list | None = None) -> list[Source]:
    """Every source behind a data path: one file, the data files of a folder (name order),
    a ``save_to_disk`` folder, or a hub name.

    Raises:
        DataError: missing path (with what to pick), a folder with no data files, see
            :func:`read_source`.
    """
    raw = str(path_or_dir)
    p = Path(os.path.expanduser(raw))
    if p.is_dir() and ((p / "state.json").exists() or (p / "dataset_dict.json").exists()):
        return [read_folder(p)]
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in DATA_EXTS and f.is_file()
                       and f.name != "dataset_info.json")
        if not found:
            raise DataError(f"Folder {p} holds no .jsonl/.json/.csv/.parquet files.")
        return [read_source(f, problems=problems) for f in found]
    if p.is_file():
        return [read_source(p, problems=problems)]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", raw) and not raw.startswith("."):
        return [read_hub(raw)]
    raise DataError(f"Data path {raw!r} does not exist; pick a .jsonl/.json/.csv/.parquet file or a folder.")


# ------------------------------------------------------------------ JSON details
def _has_text(path: Path) -> bool:
    with path.open("rb") as f:
        while chunk := f.read(65536):
            if chunk.strip():
                return True
    return False


def _json_layout(path: Path) -> tuple[dict, list | None]:
    """``load_dataset`` arguments for a ``.json`` file: a list of rows needs none; an object
    holding one list of rows is read with ``field=``; a single row object is one row."""
    with path.open(encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if not head.startswith("{"):
        return {}, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}, None  # possibly JSON lines in a .json file: datasets reads those
    if not isinstance(data, dict):
        return {}, None
    lists = [k for k, v in data.items() if isinstance(v, list)]
    if len(lists) == 1 and not any(k in data for k in ("messages", "conversations", "prompt", "instruction")):
        return {"field": lists[0]}, None
    if any(k in data for k in ("messages", "conversations", "conversation", "prompt", "instruction", "query",
                                "problem", "question")):
        return {}, [data]
    raise DataError(f"{path.name}: expected a list of rows (or an object holding one list of rows).")


def _json_fallback(path: Path, ext: str, problems: list | None) -> list[dict]:
    """Rows when ``datasets`` refused the file: the first invalid line is named (strict) or
    every invalid line becomes a problem (lenient); a valid file ``datasets`` could not type
    (a blank line between rows of changing column types) is read with ``json``."""
    text = path.read_text(encoding="utf-8")
    if ext == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path.name}: invalid JSON on line {e.lineno}: {e.msg} (column {e.colno}).") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path.name}: expected a list of row objects.")
        return data
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            msg = f"invalid JSON on line {n}: {e.msg} (column {e.colno})"
            if problems is None:
                raise DataError(f"{path.name}: {msg}. Fix or delete that line.") from None
            problems.append(Problem(row=0, severity="error", check="json", message=msg,
                                    fix="fix or delete that line", line=n))
            continue
        if not isinstance(rec, dict):
            raise DataError(f"{path.name}: line {n} is {type(rec).__name__}, not a JSON object; write one "
                            f"object per line.")
        out.append({**rec, "__line__": n})
    return out


def _csv_text_features(path: Path):
    """``Features`` typing every column of a CSV file as text (from its header row)."""
    import csv

    from datasets import Features, Value

    with path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f), [])
    return Features({name: Value("string") for name in header}) if header else None


def _nonblank_lines(path: Path, n_rows: int) -> list[int] | None:
    """Line numbers of the non-blank lines (the rows ``datasets`` read), when they add up."""
    with path.open(encoding="utf-8") as f:
        lines = [n for n, line in enumerate(f, 1) if line.strip()]
    return lines if len(lines) == n_rows else None


def _maybe_json(value: Any) -> Any:
    """CSV cells hold JSON text for list/dict columns."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    cause = e.__cause__ or e.__context__
    if "error occurred while generating" in text and cause is not None:
        text = str(cause).strip() or text
    return text.splitlines()[0][:200]


def local_or_as_given(path: str) -> str:
    """A data path from the command line as the run's ``config.yaml`` should keep it: an existing
    local file or folder becomes absolute (``launch.sh`` and "repeat with" run from other folders);
    anything else (a hub dataset id, a path that is refused later with its own message) stays as given.

    >>> local_or_as_given("user/not-here") == "user/not-here"
    True
    """
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path
