"""One StyleGallery per data folder (a second instance is refused with a message; the lock of a killed one is
taken over), and stale leftovers of killed writers are cleaned when the folder is claimed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gui.data_folder import DataFolderInUse, claim_data_folder

REPO = Path(__file__).resolve().parents[1]
HOLDER = """
import sys
from gui.data_folder import claim_data_folder
lock = claim_data_folder(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_second_claim_is_refused_until_the_first_is_released(tmp_path):
    lock = claim_data_folder(tmp_path / "data")
    with pytest.raises(DataFolderInUse, match="already open on .*data") as refused:
        claim_data_folder(tmp_path / "data")
    assert refused.value.hint and str(os.getpid()) in refused.value.message
    lock.unlock()
    claim_data_folder(tmp_path / "data").unlock()


def test_another_process_holds_the_folder_and_its_lock_is_taken_over_once_it_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "data")], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataFolderInUse, match=str(holder.pid)):
            claim_data_folder(tmp_path / "data")
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()
    claim_data_folder(tmp_path / "data").unlock()  # a crashed app does not lock the artist out


def test_claiming_cleans_stale_leftovers_in_the_data_and_cache_folders(qtbot, tmp_path):
    old = time.time() - 3600
    leftovers = [tmp_path / "data" / "sessions" / "ab" / "run-1.partial.png",
                 tmp_path / "cache" / "analysis" / "0f" / ".tmp-k2.npz"]
    kept = tmp_path / "data" / "sessions" / "ab" / "run-1.png"
    for path in leftovers + [kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    claim_data_folder(tmp_path / "data", [tmp_path / "cache"]).unlock()
    qtbot.waitUntil(lambda: not any(p.exists() for p in leftovers), timeout=10000)
    assert kept.exists()
