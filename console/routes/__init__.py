"""One router per part of the console; :func:`console.app.create_app` includes them all.

=============  ============================================================================
``ops``        /healthz, /readyz, /metrics
``auth``       /login, /logout, / (each role's home page)
``pages``      the server-rendered pages: /desk, /calls/…, /board, /reviews…, /search, /stats, /admin/users
``calls``      /api/calls…, /api/board, /api/active-call
``summaries``  /api/summaries/…, /api/calls/{id}/summary, /api/reviews
``feedback``   /api/suggestions/{id}/feedback|copied, /api/calls/{id}/feedback
``users``      /api/me, /api/users
``audit``      /api/audit
``articles``   /api/articles
``stats``      /api/metrics
``live``       the websocket /ws/calls/{id}
=============  ============================================================================
"""

from __future__ import annotations

from . import articles, audit, auth, calls, feedback, live, ops, pages, stats, summaries, users

ROUTERS = tuple(
    m.router for m in (ops, auth, pages, calls, summaries, feedback, users, audit, articles, stats, live)
)
