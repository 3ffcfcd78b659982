"""The store of record: reads and writes of the console's database, one module per concern.

==================  =========================================================================
``base``            engine, sessions, clock and the site's day boundaries; errors; ``Recorded``
``recording``       the recorder's idempotent write path (a writer per event type)
``calls``           one call and its log, search, the live board, transcripts, caller history
``feedback``        suggestions, 👍/👎 votes and draft copies
``reviews``         the summary review workflow and its history
``users``           console users (deactivation and password changes end their sessions)
``sessions``        server-side sessions (revocable, idle and absolute limits)
``audit``           the audit log (append-only)
``retention``       retention (purges by age) and erasure of calls on request
``metrics``         a day's figures
``shadow``          shadow assists' cards and their agreement with production, per hour
==================  =========================================================================

:class:`Store` puts them together; the access policy they filter with is :mod:`console.access`,
what browsers receive for an event is :mod:`console.projection`.
"""

from __future__ import annotations

from .audit import Actor
from .base import Clock, Conflict, NotFound, OwnerConflict, Recorded, system_clock
from .calls import CallQueries
from .feedback import FeedbackStore
from .metrics import Metrics
from .recording import Recording
from .retention import Retention
from .reviews import Reviews
from .sessions import Sessions
from .shadow import Shadow
from .users import Users

__all__ = ["Actor", "Clock", "Conflict", "NotFound", "OwnerConflict", "Recorded", "Store", "system_clock"]


class Store(Recording, CallQueries, FeedbackStore, Reviews, Users, Sessions, Retention, Metrics, Shadow):
    """The console's database: ``Store(engine, tz="Asia/Seoul", clock=system_clock)``."""
