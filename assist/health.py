"""What the assist service's ``/readyz`` says before the service is ready: its start-up phase and,
while the knowledge base loads or builds its index, how far the build is.

The first start on a new corpus or new settings builds the index (minutes to hours, depending on
the CPU: see docs/knowledge.md). Whoever waits for the service (``dasan demo``, the tests, the
benchmarks: ``dasan.stack.wait_ready``) then sees the build advance and keeps waiting, instead of
giving up after a fixed time chosen on a faster machine.

The build reports progress through tqdm bars (the analyser's batches, then sentence-transformers'
embedding batches); :func:`bar_progress` reads the innermost bar that is running, so the knowledge
base needs no callback of its own for this.
"""

from __future__ import annotations

from typing import Any, Protocol


class _Ready(Protocol):
    def ready(self) -> tuple[bool, dict[str, object]]: ...


def bar_progress() -> dict[str, Any]:
    """``{"step": <bar name>, "done": n, "total": n}`` of the newest running tqdm bar, or ``{}``."""
    from tqdm import tqdm

    try:
        with tqdm.get_lock():
            # tqdm's registry of open bars: private, and so not in its type stubs
            open_bars = getattr(tqdm, "_instances", ())
            bars = [b for b in open_bars if not getattr(b, "disable", False)]
    except RuntimeError:  # a bar opened or closed while we looked: report it on the next probe
        return {}
    if not bars:
        return {}
    bar = max(bars, key=lambda b: b.start_t)
    return {"step": bar.desc or "working", "done": int(bar.n), "total": bar.total}


class Startup:
    """The service's readiness from process start on: a phase while it starts, then the service's own."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.phase = "starting"
        self.service: _Ready | None = None

    def enter(self, phase: str) -> None:
        self.phase = phase

    def started(self, service: _Ready) -> None:
        self.service = service
        self.phase = "joining the consumer group"

    def readiness(self) -> tuple[bool, dict[str, object]]:
        if self.service is None:
            return False, {"instance": self.instance, "phase": self.phase, **bar_progress()}
        ok, detail = self.service.ready()
        if ok:
            self.phase = "running"  # from now on, not ready means something is wrong, not starting
        return ok, detail if ok or self.phase == "running" else {**detail, "phase": self.phase}
