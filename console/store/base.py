"""What every part of the store shares: the engine and its sessions, the clock and the site's
day boundaries, the errors, and the shape of a recorded event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, Engine, Select, text

from ..db import make_sessionmaker
from ..models import utc

Clock = Callable[[], datetime]
Row = TypeVar("Row")


def system_clock() -> datetime:
    return datetime.now(UTC)


def rowcount(result: object) -> int:
    """The rows an UPDATE or DELETE matched: ``Session.execute`` is typed as returning a plain
    ``Result``, and for these statements it is a ``CursorResult``."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


class OwnerConflict(Exception):
    """A ``CallStarted`` that would hand a call already started to another owner (counselor, team
    or caller). The recorder dead-letters it (reason ``owner_conflict``) and the call stays as it was.

    ``fields`` names what would have changed; no values (they would be personal data in logs).
    """

    def __init__(self, call_id: str, fields: list[str]) -> None:
        super().__init__(f"call_started for call {call_id} would change its owner ({', '.join(fields)})")
        self.call_id = call_id
        self.fields = fields


@dataclass(frozen=True)
class Recorded:
    """One event as stored in the call's log (``call_events``) and sent to browsers."""

    call_id: str
    seq: int
    type: str
    at: datetime
    payload: dict[str, Any]

    def message(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "event": self.payload}


class StoreBase:
    """``tz``: the site's time zone, for day boundaries (search by date, "today" in metrics).
    ``clock``: the current instant (aware); tests freeze it to hold at any hour.

    Each method opens its own session (``with self.sessions() as db``) or transaction
    (``self.sessions.begin()``): one unit of work per call, whether a request, the recorder or
    the CLI calls it. Rows come back detached but loaded (``expire_on_commit=False``).
    """

    def __init__(self, engine: Engine, tz: str = "Asia/Seoul", *, clock: Clock = system_clock) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.tz = ZoneInfo(tz)
        self.clock = clock

    def now(self) -> datetime:
        return utc(self.clock())

    def today(self) -> date:
        """The site's date now (in Seoul the day starts at 15:00 UTC of the day before)."""
        return self.now().astimezone(self.tz).date()

    def day_start(self, day: date) -> datetime:
        """Midnight of ``day`` in the site's time zone, as the UTC instant stored values compare with."""
        return datetime.combine(day, time.min, self.tz).astimezone(UTC)

    def one(self, stmt: Select[Row], key: str) -> Row:
        """The row ``stmt`` selects; :class:`NotFound` (naming ``key``) if there is none."""
        with self.sessions() as db:
            row = db.scalar(stmt)
            if row is None:
                raise NotFound(key)
            return row

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def escape_like(pattern: str) -> str:
    """``pattern`` with LIKE's wildcards taken literally (use with ``escape="\\\\"``)."""
    return pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
