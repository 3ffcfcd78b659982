"""Full article text for citation clicks, read from the corpus JSONL (data, keyed by record ``id``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

FIELDS = (
    "id",
    "citation",
    "law_name",
    "article_no",
    "article_title",
    "text",
    "effective_date",
    "law_go_kr_url",
    "kind",
)


class Corpus:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._records is None:
                records: dict[str, dict[str, Any]] = {}
                with self.path.open(encoding="utf-8") as f:
                    for line in f:
                        line = line.strip()
                        if line:
                            rec = json.loads(line)
                            records[rec["id"]] = {k: rec.get(k) for k in FIELDS}
                self._records = records
            return self._records

    def article(self, doc_id: str) -> dict[str, Any] | None:
        return self._load().get(doc_id)

    def available(self) -> bool:
        return self.path.is_file()
