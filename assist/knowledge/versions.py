"""Knowledge-base versions: which built index is active, its history, and what a new corpus changes.

Every built index already lives in ``<index_dir>/<key>/`` (the key hashes its content: see
:mod:`.store`). A *version* is such a folder; the registry (``<index_dir>/versions.json``) says which
one is active and keeps the activations in order, so ``rollback`` goes back to the one before.
Activation is also announced on the compacted ``kb.versions`` topic (:mod:`assist.kb_switch` reads
it), so every running assist instance switches without a restart.

Pure file logic and a corpus diff; no Kafka here (the CLI announces, the service listens).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .corpus import record_hash
from .records import Record
from .store import MANIFEST, IndexStore, read_manifest

REGISTRY = "versions.json"


class Activation(BaseModel):
    key: str
    at: datetime
    how: str = Field(description="activate | rollback | import")


class RegistryState(BaseModel):
    active: str | None = None
    history: list[Activation] = Field(default_factory=list)


class VersionInfo(BaseModel):
    key: str
    created: str | None
    records: int
    passages: int
    dense: bool
    active: bool
    label: str | None = None


class UnknownVersion(LookupError):
    """No built index has this key."""


def _now() -> datetime:
    return datetime.now(UTC)


class VersionRegistry:
    """The registry file of an index folder (``KnowledgeSettings.index_dir``)."""

    def __init__(self, index_dir: Path, clock: Callable[[], datetime] = _now) -> None:
        self.base = Path(index_dir)
        self.clock = clock

    @property
    def path(self) -> Path:
        return self.base / REGISTRY

    def state(self) -> RegistryState:
        try:
            return RegistryState.model_validate_json(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return RegistryState()

    def _write(self, state: RegistryState) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / f".{REGISTRY}.tmp-{os.getpid()}"
        tmp.write_text(state.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def active(self) -> str | None:
        return self.state().active

    def active_path(self) -> Path | None:
        key = self.active()
        if key is None:
            return None
        path = self.base / key
        return path if IndexStore.is_built(path) else None

    def versions(self) -> list[VersionInfo]:
        """Every built (non-provisional) index, newest first."""
        active = self.active()
        out = []
        for p in self.base.iterdir() if self.base.is_dir() else ():
            if not (p / MANIFEST).is_file() or p.name.startswith("."):
                continue
            m = read_manifest(p)
            out.append(
                VersionInfo(
                    key=m["key"],
                    created=m.get("created"),
                    records=m.get("records", 0),
                    passages=m.get("passages", 0),
                    dense=bool(m.get("dense")),
                    active=m["key"] == active,
                    label=m.get("label"),
                )
            )
        out.sort(key=lambda v: v.created or "", reverse=True)
        return out

    def resolve(self, prefix: str) -> str:
        """The full key of a built index from a unique prefix of it (as ``kb list`` shows them)."""
        keys = [v.key for v in self.versions() if v.key.startswith(prefix)] if prefix else []
        if len(keys) != 1:
            raise UnknownVersion(
                f"{'no' if not keys else 'more than one'} built index matches {prefix!r} in {self.base}"
            )
        return keys[0]

    def activate(self, key: str, how: str = "activate") -> Activation:
        if not IndexStore.is_built(self.base / key):
            raise UnknownVersion(f"no built index {key!r} in {self.base}")
        state = self.state()
        act = Activation(key=key, at=self.clock(), how=how)
        state.active = key
        state.history.append(act)
        self._write(state)
        return act

    def rollback(self) -> Activation:
        """Activate the version that was active before the current one."""
        state = self.state()
        current = state.active
        for act in reversed(state.history):
            if act.key != current and IndexStore.is_built(self.base / act.key):
                return self.activate(act.key, how="rollback")
        raise UnknownVersion("no earlier version to roll back to")


# -- what a new corpus changes --------------------------------------------------------------------
class CorpusDiff(BaseModel):
    added: list[str] = Field(default_factory=list, description="ids not in the current corpus")
    amended: list[str] = Field(default_factory=list, description="ids whose records changed")
    repealed: list[str] = Field(default_factory=list, description="ids gone from the new corpus")
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.amended or self.repealed)


def corpus_diff(current: Sequence[Record], new: Sequence[Record]) -> CorpusDiff:
    """Compare two corpora by record id (each id's set of version hashes)."""

    def by_id(records: Iterable[Record]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in records:
            out.setdefault(r.id, set()).add(record_hash(r))
        return out

    old, fresh = by_id(current), by_id(new)
    diff = CorpusDiff()
    for rid, hashes in fresh.items():
        if rid not in old:
            diff.added.append(rid)
        elif hashes != old[rid]:
            diff.amended.append(rid)
        else:
            diff.unchanged += 1
    diff.repealed = [rid for rid in old if rid not in fresh]
    diff.added.sort()
    diff.amended.sort()
    diff.repealed.sort()
    return diff


def corpus_files(folder: Path) -> list[Path]:
    """The corpus files of an import folder: its ``*.jsonl`` files, in name order."""
    files = sorted(p for p in Path(folder).glob("*.jsonl") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no .jsonl files in {folder}")
    return files


def describe(diff: CorpusDiff, limit: int = 20) -> list[str]:
    """Lines for a person: counts, then the ids (at most ``limit`` of each kind)."""
    lines = [
        f"added {len(diff.added)}, amended {len(diff.amended)}, repealed {len(diff.repealed)}, "
        f"unchanged {diff.unchanged}"
    ]
    for name, ids in (("added", diff.added), ("amended", diff.amended), ("repealed", diff.repealed)):
        for rid in ids[:limit]:
            lines.append(f"  {name:>8}: {rid}")
        if len(ids) > limit:
            lines.append(f"  {name:>8}: … {len(ids) - limit} more")
    return lines


def announcement(key: str, how: str, at: datetime) -> dict[str, Any]:
    """The value published on the kb.versions topic (key ``active``)."""
    return {"key": key, "how": how, "at": at.isoformat()}


def parse_announcement(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        body = json.loads(value)
    except ValueError:
        return None
    key = body.get("key") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key.isalnum() else None
