"""dasan.stack: the service table, and waiting for readiness as long as a service shows progress.

The waiting policy is pure logic over what services report; it is tested here with scripted
reports and an injected clock (the real services are waited for this way in tests/e2e).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dasan.stack import SERVICES, NotReady, Progress, Service, describe, wait_ready
from tests.util import wait_for


def test_the_table_serves_on_the_settings_default_ports() -> None:
    from asr.settings import AsrSettings
    from assist.settings import AssistSettings
    from console.settings import ConsoleSettings

    defaults = {
        "console": ConsoleSettings.model_fields["port"].default,
        "assist": AssistSettings.model_fields["health_port"].default,
        "asr-gateway": AsrSettings.model_fields["gateway_port"].default,
        "asr-worker": AsrSettings.model_fields["worker_port"].default,
    }
    assert {k: s.default_port for k, s in SERVICES.items()} == defaults


def test_a_service_of_the_table_gets_its_command_and_port_setting() -> None:
    svc = Service.of("assist", name="assist-b", port=18082, env={"X": "1"}, args=["--instance", "B"])
    assert svc.args == ["assist", "run", "--instance", "B"]
    assert svc.env == {"DASAN_ASSIST_HEALTH_PORT": "18082", "X": "1"}
    assert svc.url("/readyz") == "http://127.0.0.1:18082/readyz"
    assert Service.of("console").port > 0


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


@dataclass
class Scripted:
    """A starting service whose /readyz answers follow a script: (from time, code, body)."""

    name: str
    clock: Clock
    script: list[tuple[float, int, dict[str, Any]]]
    dies_at: float | None = None
    flicker: bool = False  # every other probe unanswered (a busy interpreter past the timeout)
    asked: list[float] = field(default_factory=list)

    def alive(self) -> bool:
        return self.dies_at is None or self.clock.t - 1000 < self.dies_at

    def readiness(self) -> tuple[int, dict[str, Any]]:
        elapsed = self.clock.t - 1000
        self.asked.append(elapsed)
        if self.flicker and len(self.asked) % 2 == 0:
            return 0, {}
        code, body = 0, {}
        for at, c, b in self.script:
            if elapsed >= at:
                code, body = c, b
        return code, body

    def log_tail(self, chars: int = 4000) -> str:
        return f"last lines of {self.name}"


def build(steps: list[float]) -> list[tuple[float, int, dict[str, Any]]]:
    """An index build whose batches take ``steps`` seconds each, then ready."""
    phase = "loading the knowledge base"
    script: list[tuple[float, int, dict[str, Any]]] = [(5, 503, {"phase": phase})]
    t = 10.0
    for i, step in enumerate(steps):
        script.append((t, 503, {"phase": phase, "step": "Batches", "done": i, "total": len(steps)}))
        t += step
    script.append((t + 30, 200, {"broker": "ok"}))
    return script


def test_waits_for_a_slow_build_as_long_as_it_advances() -> None:
    """An hour of index build on a slow CPU is waited for, though batches take longer than the
    stall limit once the service has shown that pace; so is a quick service next to it."""
    clock = Clock()
    slow = Scripted("assist", clock, build([100, 150, *([250] * 13)]))
    quick = Scripted("console", clock, [(3, 200, {})])
    seen: list[tuple[str, str]] = []
    wait_ready(
        [slow, quick],
        stall_s=180,
        on_status=lambda s, text, _t: seen.append((s.name, text)),
        clock=clock.now,
        sleep=clock.sleep,
    )
    assert clock.t - 1000 > 3400
    assert ("console", "ready") in seen and seen[-1] == ("assist", "ready")
    assert ("assist", "loading the knowledge base: Batches 14/15") in seen
    assert max(quick.asked) < 4  # a ready service is not asked again


def test_fails_when_progress_stops() -> None:
    clock = Clock()
    stuck = Scripted("assist", clock, [(5, 503, {"phase": "joining the consumer group", "broker": "ok"})])
    with pytest.raises(NotReady, match="assist not ready, and no progress for 1[23]\\d s") as exc:
        wait_ready([stuck], stall_s=120, clock=clock.now, sleep=clock.sleep)
    assert "joining the consumer group" in str(exc.value)
    assert "last lines of assist" in str(exc.value)
    assert 125 <= clock.t - 1000 <= 127


def test_unanswered_probes_do_not_count_as_progress() -> None:
    clock = Clock()
    stuck = Scripted("assist", clock, [(5, 503, {"phase": "loading the knowledge base"})], flicker=True)
    seen: list[str] = []
    with pytest.raises(NotReady, match="no progress for 1[23]\\d s"):
        wait_ready(
            [stuck],
            stall_s=120,
            on_status=lambda _s, text, _t: seen.append(text),
            clock=clock.now,
            sleep=clock.sleep,
        )
    assert seen == ["starting (not answering yet)", "loading the knowledge base"]


def test_fails_when_the_process_exits() -> None:
    clock = Clock()
    dying = Scripted("asr-worker", clock, [], dies_at=7)
    with pytest.raises(NotReady, match="asr-worker exited while starting") as exc:
        wait_ready([dying], clock=clock.now, sleep=clock.sleep)
    assert "last lines of asr-worker" in str(exc.value)
    assert clock.t - 1000 < 8


def test_the_stall_limit_grows_with_the_pace_the_service_has_shown() -> None:
    p = Progress(stall_s=120, last_change=0)
    for t, done in ((100, 1), (200, 2), (300, 3)):
        p.update(t, ("Batches", done))
    assert p.limit() == 300  # three 100 s gaps seen
    assert not p.stalled(300 + 299) and p.stalled(300 + 301)
    p.update(400, ("Batches", 3))  # the same report is no progress
    assert p.last_change == 300


def test_describe_says_what_a_starting_service_does() -> None:
    assert describe(0, {}) == "starting (not answering yet)"
    assert describe(200, {"phase": "x"}) == "ready"
    assert describe(
        503, {"phase": "loading the knowledge base", "step": "Batches", "done": 3, "total": 9}
    ) == ("loading the knowledge base: Batches 3/9")
    assert describe(503, {"broker": "unreachable"}) == "not ready, broker unreachable"


def test_a_pinned_service_runs_on_its_cpus_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``Service.cpus`` (the benchmarks' stand-in for a machine of its own) starts the process under
    ``taskset`` with exactly those CPUs; without it the process may run anywhere."""
    import os

    from dasan import stack

    monkeypatch.setattr(stack, "dasan_exe", lambda: "/bin/sleep")
    first = sorted(os.sched_getaffinity(0))[0]
    pinned = stack.Service("pinned", ["30"], 0, cpus=frozenset({first}))
    free = stack.Service("free", ["30"], 0)
    try:
        pinned.start({}, tmp_path)
        free.start({}, tmp_path)
        assert pinned.proc is not None and free.proc is not None

        def affinity(svc: stack.Service) -> set[int]:
            assert svc.proc is not None
            return set(os.sched_getaffinity(svc.proc.pid))

        # taskset execs sleep in the same process once it has set the mask
        wait_for(lambda: affinity(pinned) == {first}, 10, "the pinned process on its CPU")
        assert affinity(free) == set(os.sched_getaffinity(0))
    finally:
        for svc in (pinned, free):
            if svc.proc is not None:
                svc.proc.kill()
                svc.proc.wait()
