"""The installed Qt binding keeps Python's reference counts straight across signal emits.

PySide6 6.12.0 loses one reference to `True` on every `Signal.emit()`; on Python 3.11 the interpreter then aborts
("bool_dealloc") after enough emits, which a long run (progress events, previews) reaches. pyproject.toml
excludes that version; this test catches a binding with the fault, in a child process since the fault aborts.
"""
from __future__ import annotations

import subprocess
import sys

EMITS = 2000
SCRIPT = f"""
import sys
from PySide6.QtCore import QObject, Signal

class Source(QObject):
    changed = Signal(object)

source = Source()
source.changed.connect(lambda value: None)
before = sys.getrefcount(True)
for _ in range({EMITS}):
    source.changed.emit(1)
print(sys.getrefcount(True) - before)
"""


def test_signal_emits_keep_reference_counts():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"the child process aborted: {run.stderr.strip()[-300:]}"
    assert abs(int(run.stdout.strip())) < EMITS // 2, "each signal emit leaks or loses references to True"
