"""What every benchmark result says about the machine it ran on (its ``machine`` field), and the
nearest-rank percentile and JSON writing the result scripts share."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """Platform, Python, CPU model and count, memory and the load averages when it is called (the
    development machine is shared: the load says how much else ran)."""
    import psutil

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": os.getloadavg(),
    }


def nearest_rank(xs: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``xs`` by nearest rank (an observed value, not interpolated)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def write_result(out: str | Path, result: dict[str, Any]) -> Path:
    """Write a benchmark's JSON result (its folder made) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    print(f"wrote {path}")
    return path
