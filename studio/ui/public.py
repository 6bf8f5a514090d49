"""Public mode: the one boundary between what a visitor sends and this server's files.

A crafted client can send any string to any endpoint (the page's dropdowns are not a
boundary, and gradio runs even the events without an API name), so every value that
names a model, an adapter, a run or a data path goes through this module:

* :func:`decide` — which mode an app starts in, and why (the start-up line says it).
  Public when the app runs as a Hugging Face Space (``SPACE_ID``), listens on a
  non-loopback address or opens a ``--share`` link *without a login*; ``--private`` /
  ``STUDIO_PUBLIC=0`` or a login (``--auth`` / ``STUDIO_AUTH``, gradio's ``auth=``) turns
  the full app on deliberately; ``--public`` / ``STUDIO_PUBLIC=1`` forces public mode.
* :func:`check_model` — in public mode only the allow-list (:data:`PUBLIC_MODELS`, plus
  the model the operator started the app with).
* :func:`adapter_choices` / :func:`resolve_adapter` — adapters are offered by run name
  (the value is the folder's path *relative to* the runs folder, never a server path) and
  resolved on the server: in public mode only folders that, after ``realpath`` (symlinks,
  ``..``), lie inside the runs folder and hold ``adapter_config.json`` and
  ``adapter_model.safetensors``. Every refusal is the same sentence, so an error neither
  echoes a path nor tells whether a folder exists or holds an adapter.
* :func:`built_tabs` — Training (SFT, RL), export, data preview/fix and the Runs tab are
  *not built* in public mode, so their endpoints do not exist.
* :func:`scrub` — a backstop for engine messages: the runs folder's absolute path
  becomes ``runs``.

What a public app still does: Chat and Compare with allow-listed models and the
adapters trained here, capped uploads, memory budgets on media, votes per visitor.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from studio.config import BASE_ID, EMBEDDED, FLASH_ID, THINKING_ID
from studio.errors import ConfigError, InputError

#: Models a visitor may pick on a public app (no server paths, no arbitrary hub ids).
PUBLIC_MODELS = (EMBEDDED, "toy-base", "toy-thinking", THINKING_ID, BASE_ID, FLASH_ID)
#: Tab modules a public app builds; the training tabs become a "duplicate to train" note.
PUBLIC_TABS = ("studio.ui.tabs.chat", "studio.ui.tabs.compare")
#: Tab modules that train: in public mode a note with the command instead of the tab.
TRAINING_TABS = ("studio.ui.tabs.sft", "studio.ui.tabs.rl")
#: Files an adapter folder must hold to be loaded.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: Longest adapter value accepted (a run folder name and a sub-folder or two).
MAX_ADAPTER_VALUE = 300
#: Values of the "no adapter" choice in the Chat and Compare dropdowns.
NO_ADAPTER_VALUES = ("", "none", "none (base model)")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


# ----------------------------------------------------------------------------- mode
@dataclass(frozen=True)
class Mode:
    """Which app a launch builds.

    Attributes:
        public: public mode (Chat and Compare only, allow-listed models, runs/ adapters).
        reason: why, in a few English words for the start-up line.
        exposed: the full app is reachable from the network without a login (warn).
    """

    public: bool
    reason: str
    exposed: bool = False

    def line(self, url: str = "") -> str:
        """The start-up line: which mode is on, why, and how to get the other one."""
        where = f" on {url}" if url else ""
        if self.public:
            return (f"Public mode{where}: Chat and Compare only, allow-listed models, adapters from the runs "
                    f"folder only; no training, export, data tools or Runs tab ({self.reason}). For the full "
                    f"app, require a login (STUDIO_AUTH=user:password) or start with --private.")
        text = f"Full app{where}, public mode off ({self.reason})."
        if self.exposed:
            text += (" Warning: anyone who can reach this address can train, export and read data paths on "
                     "this machine; set STUDIO_AUTH=user:password to require a login.")
        return text


def is_loopback(host: str | None) -> bool:
    """True for addresses only this machine can reach (``127.0.0.0/8``, ``::1``, ``localhost``).

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("192.168.1.5")
    (True, True, False, False)
    """
    h = (host or "").strip().strip("[]").lower()
    if h in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a host name that may resolve to anything: treat as reachable


def parse_auth(values: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """``user:password`` pairs (a comma-separated string or a list of them) → gradio's
    ``auth=`` list. The password is everything after the first colon.

    >>> parse_auth("ann:s3cret, bob:pa:ss")
    [('ann', 's3cret'), ('bob', 'pa:ss')]

    Raises:
        ConfigError: a pair without a colon, or an empty user or password.
    """
    if not values:
        return []
    items = values.split(",") if isinstance(values, str) else [x for v in values for x in str(v).split(",")]
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user.strip() or not password:
            raise ConfigError("A login must be user:password (STUDIO_AUTH or --auth), e.g. ann:long-secret; "
                              "separate several with commas.")
        out.append((user.strip(), password))
    return out


def decide(host: str | None, *, flag: bool | None = None, auth: Sequence | None = None, share: bool = False,
           env: Mapping[str, str] | None = None) -> Mode:
    """Which mode an app starts in.

    Order: an explicit ``flag`` (``--public`` True / ``--private`` False), else
    ``STUDIO_PUBLIC`` (1/0); else a login (``auth``) means the full app; else public when
    ``SPACE_ID`` is set (a Hugging Face Space), when ``share`` opens a gradio.live link, or
    when ``host`` is not a loopback address; else (127.0.0.1) the full app.

    Raises:
        ConfigError: ``STUDIO_PUBLIC`` is set to something other than 1/0/true/false.
    """
    env = os.environ if env is None else env
    src = "--public" if flag else "--private"
    if flag is None:
        raw = str(env.get("STUDIO_PUBLIC", "")).strip().lower()
        if raw in _TRUE:
            flag, src = True, "STUDIO_PUBLIC=1"
        elif raw in _FALSE:
            flag, src = False, "STUDIO_PUBLIC=0"
        elif raw:
            raise ConfigError(f"STUDIO_PUBLIC={raw!r} is not understood; use 1 (public mode) or 0 (the full app).")
    open_to_network = bool(env.get("SPACE_ID")) or share or not is_loopback(host)
    if flag is True:
        return Mode(True, f"asked for with {src}")
    if flag is False:
        return Mode(False, f"asked for with {src}", exposed=open_to_network and not auth)
    if auth:
        return Mode(False, "visitors log in")
    if env.get("SPACE_ID"):
        return Mode(True, "running as a Hugging Face Space, SPACE_ID is set, and no login is required")
    if share:
        return Mode(True, "--share opens a public link and no login is required")
    if not is_loopback(host):
        return Mode(True, f"listening on {host}, reachable from the network, and no login is required")
    return Mode(False, f"listening on {host} only")


def built_tabs(public: bool, tabs: Sequence[tuple[str, str]]) -> list[tuple[str, str, bool]]:
    """``(module, label, build it)`` for each tab an app shows: in public mode the training
    tabs are a note (False) and every other tab outside :data:`PUBLIC_TABS` is left out."""
    out = []
    for module, label in tabs:
        if not public or module in PUBLIC_TABS:
            out.append((module, label, True))
        elif module in TRAINING_TABS:
            out.append((module, label, False))
    return out


# ----------------------------------------------------------------------------- models
#: Allow-listed models small enough for any host (a few MB each).
SMALL_MODELS = (EMBEDDED, "toy-base", "toy-thinking")


def allowed_models(ctx) -> tuple[str, ...]:
    """Models a visitor may load: the small ones, the operator's own model and — only when
    the operator serves a 9B hub checkpoint, so the host is sized for one — the other hub
    checkpoints of :data:`PUBLIC_MODELS`. A CPU Space started on the embedded model cannot
    be made to download and hold ~20 GB of weights."""
    own = (ctx.model.name_or_path or EMBEDDED).strip()
    big = tuple(m for m in PUBLIC_MODELS if m not in SMALL_MODELS)
    allowed = SMALL_MODELS + (big if own in big else ())
    return allowed + ((own,) if own not in allowed else ())


def check_model(ctx, name: str | None) -> str:
    """Return ``name`` (stripped; ``embedded`` when empty) if this app may load it.

    Raises:
        InputError: public mode and ``name`` is not in :func:`allowed_models` (the
            message lists the allowed names, never the value sent).
    """
    name = str(name or EMBEDDED).strip()
    if ctx.public and name not in allowed_models(ctx):
        from studio.ui.i18n import tr

        raise InputError(tr("public.model_refused", models=", ".join(_shown(m) for m in allowed_models(ctx))))
    return name


def _shown(name: str) -> str:
    """A model name as a refusal may show it: a local folder (absolute, relative or existing)
    by its last part only, so no server path reaches a visitor."""
    p = Path(name)
    local = p.is_absolute() or name.startswith((".", "~")) or ("/" in name and p.exists())
    return p.name if local else name


def model_label(ctx, name: str) -> str:
    """How to show a model's name: in public mode a local folder shows only its last part."""
    if ctx.public and name not in PUBLIC_MODELS and ("/" in name or os.sep in name) and Path(name).exists():
        return Path(name).name
    return name


# ----------------------------------------------------------------------------- adapters
def _runs_root(ctx) -> Path:
    return Path(os.path.realpath(Path(ctx.runs_dir).expanduser()))


def _inside(root: Path, path: Path) -> bool:
    try:
        return os.path.commonpath([str(root), str(path)]) == str(root) and path != root
    except ValueError:  # different drives
        return False


def _is_adapter(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in ADAPTER_FILES)


def adapter_key(ctx, folder: str | os.PathLike) -> str:
    """A dropdown value for an adapter folder: its path relative to the runs folder
    (``<run>/adapter``), or, in the full app only, the absolute path of a folder elsewhere."""
    real = Path(os.path.realpath(Path(folder).expanduser()))
    root = _runs_root(ctx)
    if _inside(root, real):
        return real.relative_to(root).as_posix()
    return str(folder)


def adapter_label(key: str) -> str:
    """A dropdown label for an adapter value: the run folder for ``<run>/adapter``,
    ``<run>/checkpoint-40`` for a checkpoint, the folder name for an absolute path.

    >>> adapter_label("20260101-120000-sft-demo/adapter"), adapter_label("run/checkpoint-40")
    ('20260101-120000-sft-demo', 'run/checkpoint-40')
    """
    p = Path(key)
    if p.is_absolute():
        return p.parent.name if p.name == "adapter" and p.parent.name else p.name
    return p.parent.as_posix() if p.name == "adapter" and p.parent.as_posix() != "." else p.as_posix()


def find_adapter_folders(ctx, limit: int = 50) -> list[Path]:
    """Adapter folders under the runs folder (``<run>/**/adapter_config.json``, checkpoints
    left out), in name order, real paths inside the runs folder only."""
    root = _runs_root(ctx)
    found: list[Path] = []
    if root.is_dir():
        for cfg in sorted(root.glob("*/**/adapter_config.json")):
            folder = Path(os.path.realpath(cfg.parent))
            if "checkpoint-" in cfg.parent.as_posix() or not _inside(root, folder) or folder in found:
                continue
            found.append(folder)
            if len(found) >= limit:
                break
    return found


def adapter_choices(ctx, handed_over: str | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` dropdown choices for the adapters of this app, no server paths
    in either: the folder ``handed_over`` by "Try it"/"Compare with base" (full app only)
    first, then the runs folder's adapters."""
    keys: list[str] = []
    if handed_over and not ctx.public:
        keys.append(adapter_key(ctx, handed_over))
    for folder in find_adapter_folders(ctx):
        k = adapter_key(ctx, folder)
        if k not in keys:
            keys.append(k)
    return [(adapter_label(k), k) for k in keys]


def resolve_adapter(ctx, value: str | None) -> str | None:
    """The adapter folder a dropdown value names, checked on the server; None for none.

    Public mode: only a relative value whose ``realpath`` lies inside the runs folder and
    holds :data:`ADAPTER_FILES`. The full app: a value relative to the runs folder, else
    a path as typed (the engine checks it).

    Raises:
        InputError: public mode and anything else — absolute paths, ``..`` or a symlink
            out of the runs folder, NUL bytes, a folder that is no adapter, one that does
            not exist. Always the same sentence: no path, no hint which rule failed.
    """
    v = "" if value is None else str(value).strip()
    if v.lower() in NO_ADAPTER_VALUES:
        return None
    root = _runs_root(ctx)
    if not ctx.public:
        rel = Path(os.path.realpath(root / v)) if not Path(v).expanduser().is_absolute() else None
        if rel is not None and _inside(root, rel) and rel.is_dir():
            return str(rel)
        return v
    from studio.ui.i18n import tr

    refused = InputError(tr("public.adapter_refused"))
    if "\x00" in v or len(v) > MAX_ADAPTER_VALUE or v.startswith(("~", "\\")) or Path(v).is_absolute():
        raise refused
    try:
        folder = Path(os.path.realpath(root / v))
    except (OSError, ValueError):
        raise refused from None
    if not _inside(root, folder) or not _is_adapter(folder):
        raise refused
    return str(folder)


def shown_adapter(ctx, folder: str | None) -> str | None:
    """How an adapter folder may appear in what a visitor gets (headers, vote rows): its
    value relative to the runs folder in public mode, the folder itself otherwise."""
    if not folder or not ctx.public:
        return folder
    return adapter_key(ctx, folder)


# ----------------------------------------------------------------------------- messages
def scrub(ctx, text: str) -> str:
    """``text`` with the runs folder's absolute paths replaced by ``runs`` (public mode
    only): a backstop for engine messages about an adapter inside the runs folder."""
    if not ctx.public or not text:
        return text
    paths = {str(_runs_root(ctx)), str(Path(ctx.runs_dir).expanduser().absolute())}
    for p in sorted(paths, key=len, reverse=True):
        if p and p != os.sep:
            text = text.replace(p, "runs")
    return text
