"""LLaMA-Factory's ``dataset_info.json``: which file an entry names, its format and its column / role names.

LLaMA-Factory keeps its datasets in a ``data/`` folder with a ``dataset_info.json`` that maps
a dataset name to ``{"file_name", "formatting": "alpaca"|"sharegpt", "columns": {…},
"tags": {…}}`` (its ``data/README.md``). The Studio reads the same entry so a user's
custom column names (``"messages": "conversations"``, ``"images": "pics"``) and role names
(``"user_tag": "human"``, ``"role_tag": "from"``) work as they do there:

* ``studio doctor data/ --dataset mllm_demo`` (a folder holding ``dataset_info.json``),
* ``studio doctor --dataset-info data/dataset_info.json --dataset mllm_demo``,
* ``studio sft --data my.json --dataset-info other/dataset_info.json --dataset mine``
  (the entry's columns and roles, applied to ``my.json``).

A ``datasets.save_to_disk`` folder also holds a ``dataset_info.json`` (with ``state.json``
beside it); :func:`is_llamafactory_info` tells the two apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.errors import DataError

INFO_FILE = "dataset_info.json"
#: LLaMA-Factory's defaults (data/README.md): alpaca columns and sharegpt role tags.
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_COLUMNS = {"messages": "conversations"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
_SOURCE_KEYS = ("file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")


@dataclass
class InfoEntry:
    """One ``dataset_info.json`` entry.

    Attributes:
        name: the entry's name; info: the ``dataset_info.json`` it came from.
        file: the data file or folder (``file_name`` against the info file's folder).
        formatting: ``"alpaca"`` or ``"sharegpt"``.
        columns: canonical name (``prompt``, ``query``, ``response``, ``history``,
            ``messages``, ``system``, ``tools``, ``images``, ``videos``, ``audios``) → the
            file's column, LLaMA-Factory's defaults filled in.
        tags: sharegpt role/content keys and role values, defaults filled in.
    """

    name: str
    info: Path
    file: Path
    formatting: str
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    def column(self, canonical: str, default: str | None = None) -> str | None:
        """The file's column for ``canonical`` (``default`` when the entry names none)."""
        return self.columns.get(canonical) or default


def is_llamafactory_info(path: Path) -> bool:
    """True when ``path`` (a ``dataset_info.json``) is LLaMA-Factory's: an object whose values
    are entries naming a ``file_name`` or a hub source; False for a ``save_to_disk`` one."""
    if path.name != INFO_FILE or not path.is_file() or (path.parent / "state.json").exists():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and any(k in v for k in _SOURCE_KEYS) for v in data.values())


def read_entry(info: str | Path, name: str | None) -> InfoEntry:
    """The entry ``name`` of a LLaMA-Factory ``dataset_info.json`` (a file or its folder).

    With ``name`` None the file must hold exactly one entry with a local ``file_name``
    that exists.

    Raises:
        DataError: unreadable file, unknown name (the message lists the local entries),
            several candidates and no name, a hub-only or ranking/KTO entry (the Studio
            trains SFT and RL, not preference data), a ``file_name`` that does not exist.
    """
    path = Path(info).expanduser()
    if path.is_dir():
        path = path / INFO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; pass LLaMA-Factory's data/dataset_info.json or its folder.") from None
    except ValueError as e:
        raise DataError(f"{path} is not valid JSON ({e}); fix it or pass the data file itself with --data.") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path} holds no dataset entries; LLaMA-Factory's format is {{name: {{file_name, …}}}}.")
    local = [k for k, v in data.items() if isinstance(v, dict) and v.get("file_name")
             and (path.parent / v["file_name"]).exists()]
    if name is None:
        if len(local) != 1:
            listed = ", ".join(local[:8]) + (" …" if len(local) > 8 else "")
            raise DataError(f"{path} names {len(local)} local datasets ({listed or 'none'}); pick one with "
                            f"--dataset NAME (the `dataset` field of a run config).")
        name = local[0]
    entry = data.get(name)
    if not isinstance(entry, dict):
        listed = ", ".join(local[:8]) + (" …" if len(local) > 8 else "")
        raise DataError(f"{path} has no entry {name!r}; its local datasets are: {listed or 'none'}.")
    if entry.get("ranking"):
        raise DataError(f"Entry {name!r} is a ranking (preference/DPO) dataset; the Studio trains SFT and RL — "
                        f"pick an SFT entry or keep only the chosen answers as assistant turns.")
    if (entry.get("columns") or {}).get("kto_tag"):
        raise DataError(f"Entry {name!r} is a KTO dataset (its `kto_tag` marks bad answers, which SFT would "
                        f"learn); keep only the rows marked true and drop the kto_tag column.")
    if not entry.get("file_name"):
        hub = next((f"{k} {entry[k]}" for k in _SOURCE_KEYS if entry.get(k)), "no file_name")
        raise DataError(f"Entry {name!r} has no local file ({hub}); download it (datasets' save_to_disk) and "
                        f"set its file_name, or pass the file with --data.")
    file = path.parent / entry["file_name"]
    formatting = str(entry.get("formatting") or "alpaca").lower()
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError(f"Entry {name!r} has formatting {formatting!r}; LLaMA-Factory's formats are alpaca "
                        f"and sharegpt.")
    columns = dict(ALPACA_COLUMNS if formatting == "alpaca" else SHAREGPT_COLUMNS)
    columns.update({k: v for k, v in (entry.get("columns") or {}).items() if isinstance(v, str) and v})
    tags = dict(SHAREGPT_TAGS)
    tags.update({k: v for k, v in (entry.get("tags") or {}).items() if isinstance(v, str) and v})
    return InfoEntry(name=name, info=path, file=file, formatting=formatting, columns=columns, tags=tags)


def resolve(data: str | Path | None, dataset_info: str | Path | None = None,
            dataset: str | None = None) -> tuple[Path, InfoEntry | None]:
    """(the data file or folder to read, the ``dataset_info.json`` entry that says how) for a
    run's ``data`` / ``dataset_info`` / ``dataset`` settings.

    * ``dataset_info`` given: its entry ``dataset``; the file is ``data`` when given, else the
      entry's ``file_name``.
    * ``data`` is LLaMA-Factory's ``dataset_info.json`` or a folder holding one: as above.
    * otherwise ``data`` as it is, no entry (``dataset`` must then be empty).

    Raises:
        DataError: see :func:`read_entry`; ``dataset`` without any ``dataset_info.json``.
    """
    p = Path(str(data)).expanduser() if data else None
    if dataset_info:
        entry = read_entry(dataset_info, dataset or None)
        return (p if p is not None else entry.file), entry
    if p is not None:
        info = p / INFO_FILE if p.is_dir() else p
        if is_llamafactory_info(info):
            entry = read_entry(info, dataset or None)
            return entry.file, entry
    if dataset:
        raise DataError(f"--dataset {dataset!r} needs a LLaMA-Factory dataset_info.json: pass it with "
                        f"--dataset-info FILE, or pass its folder as the data.")
    if p is None:
        raise DataError("No data given: pass a data file or folder (or --dataset-info FILE --dataset NAME).")
    return p, None
