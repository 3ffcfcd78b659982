"""What the assist service's /readyz says while it starts: its phase and the index build's progress."""

from __future__ import annotations

import io

from tqdm import tqdm

from assist.health import Startup, bar_progress


def test_bar_progress_reads_the_newest_running_bar() -> None:
    assert bar_progress() == {}
    sink = io.StringIO()
    outer = tqdm(total=4, desc="analyse", file=sink)
    inner = tqdm(total=27, desc="Batches", file=sink, mininterval=0)
    try:
        inner.update(12)
        assert bar_progress() == {"step": "Batches", "done": 12, "total": 27}
        inner.close()
        outer.update(1)
        assert bar_progress() == {"step": "analyse", "done": 1, "total": 4}
    finally:
        inner.close()
        outer.close()
    assert bar_progress() == {}
    with tqdm(range(3), disable=True):
        assert bar_progress() == {}  # a disabled bar shows nothing, and is not reported


class Service:
    def __init__(self) -> None:
        self.ok = False

    def ready(self) -> tuple[bool, dict[str, object]]:
        return self.ok, {"instance": "A", "broker": "ok" if self.ok else "unreachable"}


def test_startup_reports_phases_then_the_service() -> None:
    startup = Startup("A")
    startup.enter("loading the knowledge base")
    with tqdm(total=9, desc="Batches", file=io.StringIO()) as bar:
        bar.update(3)
        assert startup.readiness() == (
            False,
            {
                "instance": "A",
                "phase": "loading the knowledge base",
                "step": "Batches",
                "done": 3,
                "total": 9,
            },
        )
    service = Service()
    startup.started(service)
    assert startup.readiness() == (
        False,
        {"instance": "A", "broker": "unreachable", "phase": "joining the consumer group"},
    )
    service.ok = True
    assert startup.readiness() == (True, {"instance": "A", "broker": "ok"})
    service.ok = False  # once running, not ready is trouble, not a start-up phase
    assert startup.readiness() == (False, {"instance": "A", "broker": "unreachable"})
