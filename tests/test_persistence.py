"""Saved documents: atomic writes, backup fallback, migration, and a writer killed mid-write."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import DocumentUnreadable
from engine.persistence import backup_path, load_json, save_json_atomic

REPO = Path(__file__).resolve().parents[1]

# Saves a ~2 MB document over and over; each document carries its own checksum, so a half-written or
# mixed-up file shows up as a mismatch rather than passing as valid data.
WRITER = """
import sys, zlib
from engine.persistence import save_json_atomic
path = sys.argv[1]
n = 0
while True:
    items = [{"id": i, "sha": f"{n:08d}{i:056d}", "score": i * 0.5} for i in range(20000)]
    save_json_atomic(path, {"n": n, "items": items, "crc": zlib.crc32(repr(items).encode())}, version=3)
    if n == 0:
        print("ready", flush=True)
    n += 1
"""


def test_round_trip_and_envelope(tmp_path):
    path = tmp_path / "index.json"
    data = {"images": [{"sha": "ab", "name": "ü.png"}], "k": 1.5}
    save_json_atomic(path, data, version=2)
    assert load_json(path) == data
    assert json.loads(path.read_text("utf-8")) == {"version": 2, "data": data}
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_document_is_none(tmp_path):
    assert load_json(tmp_path / "absent.json") is None


def test_previous_good_file_becomes_backup(tmp_path):
    path = tmp_path / "pins.json"
    save_json_atomic(path, {"gen": 1}, version=1)
    assert not backup_path(path).exists()
    save_json_atomic(path, {"gen": 2}, version=1)
    save_json_atomic(path, {"gen": 3}, version=1)
    assert load_json(path) == {"gen": 3}
    assert load_json(backup_path(path)) == {"gen": 2}


@pytest.mark.parametrize("damage", [b"", b'{"version": 1, "da', b"\xff\xfe garbage", b'{"no": "envelope"}', b"[1, 2]"])
def test_damaged_file_falls_back_to_backup(tmp_path, damage):
    path = tmp_path / "history.json"
    save_json_atomic(path, {"runs": [1]}, version=1)
    save_json_atomic(path, {"runs": [1, 2]}, version=1)
    path.write_bytes(damage)
    assert load_json(path) == {"runs": [1]}


def test_damaged_file_is_never_rotated_over_the_good_backup(tmp_path):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"gen": 1}, version=1)
    save_json_atomic(path, {"gen": 2}, version=1)
    path.write_text("{truncated")
    save_json_atomic(path, {"gen": 3}, version=1)
    assert load_json(path) == {"gen": 3}
    assert load_json(backup_path(path)) == {"gen": 1}


def test_only_backup_left_after_kill_between_renames(tmp_path):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"gen": 1}, version=1)
    save_json_atomic(path, {"gen": 2}, version=1)
    path.unlink()  # the state between "main -> .bak" and "temp -> main"
    assert load_json(path) == {"gen": 1}
    save_json_atomic(path, {"gen": 3}, version=1)
    assert load_json(path) == {"gen": 3}


def test_both_damaged_raises_clear_error(tmp_path):
    path = tmp_path / "index.json"
    path.write_text("nope")
    backup_path(path).write_text("nope either")
    with pytest.raises(DocumentUnreadable, match="index.json and its backup"):
        load_json(path)


def test_migrate_receives_stored_version(tmp_path):
    path = tmp_path / "pins.json"
    save_json_atomic(path, [[0, 1]], version=1)

    def migrate(data, version):
        assert version == 1
        return {"pins": [{"region": r, "ref": ref} for r, ref in data]}

    assert load_json(path, migrate=migrate) == {"pins": [{"region": 0, "ref": 1}]}


def test_unserialisable_data_leaves_file_untouched(tmp_path):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"ok": True}, version=1)
    with pytest.raises(TypeError):
        save_json_atomic(path, {"bad": object()}, version=1)
    assert load_json(path) == {"ok": True}
    assert not list(tmp_path.glob("*.tmp"))


def test_stale_temp_files_are_cleaned(tmp_path):
    import os

    path = tmp_path / "index.json"
    stale = tmp_path / "index.json.abc123.tmp"
    fresh = tmp_path / "index.json.def456.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    save_json_atomic(path, {}, version=1)
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a writer still running


def test_writer_killed_mid_write_always_leaves_a_loadable_document(tmp_path):
    import zlib

    path = tmp_path / "index.json"
    rng = random.Random(1234)
    last_n = -1
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        doc = load_json(path)
        assert doc is not None
        assert zlib.crc32(repr(doc["items"]).encode()) == doc["crc"]
        assert all(item["sha"].startswith(f"{doc['n']:08d}") for item in doc["items"])
        last_n = doc["n"]
    assert last_n >= 0
