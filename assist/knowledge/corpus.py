"""Loading corpus records and splitting articles into passages at 항 boundaries.

Any JSONL file with the schema of ``../shared/corpus/regulations.jsonl`` can be loaded; several files
are read in order. Several versions of one ``id`` may coexist (a newer law version added by an
operator): :func:`current_versions` picks, for a date, the version in force.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from .records import Passage, Record

# A 항 starts a line with a circled number (①..⑳, ㉑..㉟ exist in long articles too).
_HANG = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳㉑㉒㉓㉔㉕㉖㉗㉘㉙㉚㉛㉜㉝㉞㉟"
_HANG_START = re.compile(rf"(?m)^(?=[{_HANG}])")


class CorpusError(ValueError):
    """A corpus file is missing or a line does not match the record schema."""


def load_records(sources: Iterable[Path | str | dict[str, Any] | Record]) -> list[Record]:
    """Records from JSONL paths, dicts or :class:`Record` objects (mixed freely)."""
    out: list[Record] = []
    for src in sources:
        if isinstance(src, Record):
            out.append(src)
        elif isinstance(src, dict):
            out.append(Record.model_validate(src))
        else:
            path = Path(src)
            if not path.is_file():
                raise CorpusError(f"corpus file not found: {path}")
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        out.append(Record.model_validate_json(line))
                    except ValueError as exc:
                        raise CorpusError(f"{path}:{lineno}: {exc}") from exc
    return out


def topic_terms(records: Iterable[Record]) -> list[str]:
    """The corpus' topic tags, sorted: the analyser adds them to its user dictionary."""
    return sorted({t for r in records for t in r.topics})


def version_key(rec: Record) -> str:
    return rec.effective_date.isoformat() if rec.effective_date else "0000-00-00"


def record_hash(rec: Record) -> str:
    payload = json.dumps(rec.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def in_force(rec_or_passage: Record | Passage, as_of: date) -> bool:
    eff = rec_or_passage.effective_date
    exp = rec_or_passage.expiry_date
    return (eff is None or eff <= as_of) and (exp is None or as_of <= exp)


def current_versions(items: Iterable[Record | Passage], as_of: date) -> set[tuple[str, str]]:
    """(doc id, version) pairs in force on ``as_of``: not yet effective, expired and superseded are out.

    A version is superseded when another version of the same id took effect later but still on or
    before ``as_of``.
    """
    best: dict[str, str] = {}
    for it in items:
        if not in_force(it, as_of):
            continue
        doc_id = it.id if isinstance(it, Record) else it.doc_id
        v = version_key(it) if isinstance(it, Record) else it.version
        if doc_id not in best or v > best[doc_id]:
            best[doc_id] = v
    return set(best.items())


def _split_hang(text: str) -> list[str]:
    parts = [p.strip() for p in _HANG_START.split(text)]
    return [p for p in parts if p]


def split_passages(rec: Record, max_chars: int = 400, min_chars: int = 120) -> list[Passage]:
    """Split a long article at 항 boundaries; short articles (or ones without 항) stay whole.

    Consecutive short 항 are merged until a passage reaches ``min_chars``. Every passage keeps the
    article's id, number, title and citation.
    """
    text = rec.text.strip()
    chunks: list[str]
    if len(text) <= max_chars:
        chunks = [text]
    else:
        raw = _split_hang(text)
        chunks = []
        buf = ""
        for part in raw:
            if buf and len(buf) >= min_chars:
                chunks.append(buf)
                buf = part
            else:
                buf = f"{buf}\n\n{part}" if buf else part
        if buf:
            if chunks and len(buf) < min_chars // 2:
                chunks[-1] = f"{chunks[-1]}\n\n{buf}"
            else:
                chunks.append(buf)
        if not chunks:
            chunks = [text]
    version = version_key(rec)
    out = []
    for i, chunk in enumerate(chunks):
        markers = re.findall(rf"(?m)^([{_HANG}])", chunk)
        out.append(
            Passage(
                passage_id=f"{rec.id}@{version}#{i + 1}",
                doc_id=rec.id,
                version=version,
                citation=rec.citation or f"「{rec.law_name}」 {rec.article_no}",
                law_name=rec.law_name,
                article_no=rec.article_no,
                article_title=rec.article_title,
                jurisdiction=rec.jurisdiction,
                topics=list(rec.topics),
                effective_date=rec.effective_date,
                expiry_date=rec.expiry_date,
                paragraphs=markers,
                text=chunk,
            )
        )
    return out


def passage_doc_text(p: Passage) -> str:
    """The text a lexical index sees: law name, article title and the passage."""
    title = p.article_title or ""
    return f"{p.law_name} {p.article_no} {title}\n{p.text}"
