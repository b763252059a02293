"""What every benchmark starts with: the repository on the import path (they run as scripts), the benchmark
images (../shared/benchmark: content photos and one folder of references per style family), and one line saying
what machine and load a figure was measured on."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH = ROOT.parent / "shared" / "benchmark"
FAMILIES = ["VanGogh", "WaterColor", "Cubism", "InkWashPainting", "Fauvism"]


def machine_line() -> str:
    """'x86_64, 2 usable cores, load average 3.1': figures from a busy machine are not comparable."""
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.1f}"
