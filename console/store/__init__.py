"""The store of record: reads and writes of the console's database, one module per concern.

==================  =========================================================================
``base``            engine, sessions, clock and the site's day boundaries; errors; ``Recorded``
``recording``       the recorder's idempotent write path (a writer per event type), raw-text purge
``calls``           one call and its log, search, the live board, transcripts, caller history
``feedback``        suggestions, 👍/👎 votes and draft copies
``reviews``         the summary review workflow and its history
``users``           console users
``audit``           the audit log
``metrics``         a day's figures
==================  =========================================================================

:class:`Store` puts them together; the access policy they filter with is :mod:`console.access`,
what browsers receive for an event is :mod:`console.projection`.
"""

from __future__ import annotations

from .audit import Audit
from .base import Clock, Conflict, NotFound, OwnerConflict, Recorded, system_clock
from .calls import CallQueries
from .feedback import FeedbackStore
from .metrics import Metrics
from .recording import Recording
from .reviews import Reviews
from .users import Users

__all__ = ["Clock", "Conflict", "NotFound", "OwnerConflict", "Recorded", "Store", "system_clock"]


class Store(Recording, CallQueries, FeedbackStore, Reviews, Users, Audit, Metrics):
    """The console's database: ``Store(engine, tz="Asia/Seoul", clock=system_clock)``."""
