"""The assist service's internal API, asked over loopback: the counselor search, exact article
versions and the knowledge-base version in use (see ``assist/kb_switch.py``). The console never
loads the knowledge base's encoder itself."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class AssistUnavailable(RuntimeError):
    """The assist service did not answer (not running, loading, or too slow)."""


class AssistClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, Any]) -> tuple[int, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
        url = f"{self.base_url}{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 404):
                return exc.code, None
            raise AssistUnavailable(f"assist answered {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise AssistUnavailable(type(exc).__name__) from exc

    def search(self, **params: Any) -> dict[str, Any] | None:
        """The search answer (``index_key``, ``results``); None when the query was refused (400)."""
        status, body = self._get("/internal/search", params)
        return body if status == 200 else None

    def article(self, record_id: str, effective_date: str | None = None) -> dict[str, Any] | None:
        status, body = self._get("/internal/article", {"id": record_id, "effective_date": effective_date})
        return body if status == 200 else None

    def kb(self) -> dict[str, Any]:
        status, body = self._get("/internal/kb", {})
        return body if status == 200 else {}
