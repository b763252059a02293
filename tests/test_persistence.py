"""Saved documents: atomic writes, backup fallback, shape checks, newer versions, concurrent writers, file modes,
leftovers of killed writers, and a writer killed mid-write."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import DocumentTooNew
from engine.persistence import backup_path, load_document, remove_stale_leftovers, save_json_atomic
from engine.schema import SchemaError, member

REPO = Path(__file__).resolve().parents[1]


def load_json(path, migrate=None, version=3, validate=None):
    """The data of the document at `path` (None when there is none)."""
    loaded = load_document(path, version, validate=validate, migrate=migrate)
    return None if loaded is None else loaded.data


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


def test_a_deleted_file_is_restored_from_its_backup(tmp_path):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"gen": 1}, version=1)
    save_json_atomic(path, {"gen": 2}, version=1)
    path.unlink()  # deleted by hand, or by another program
    assert load_json(path) == {"gen": 1}
    save_json_atomic(path, {"gen": 3}, version=1)
    assert load_json(path) == {"gen": 3}


def test_damaged_file_and_backup_are_kept_aside_and_never_overwritten(tmp_path):
    path = tmp_path / "index.json"
    path.write_text("nope")
    backup_path(path).write_text("nope either")
    loaded = load_document(path, 1)
    assert loaded.data is None and not loaded.read_only
    assert str(path) in loaded.problem and "starting empty" in loaded.problem
    kept = sorted(p.read_text() for p in tmp_path.glob("index.json*.damaged-*"))
    assert kept == ["nope", "nope either"]
    save_json_atomic(path, {"gen": 1}, version=1)
    assert sorted(p.read_text() for p in tmp_path.glob("index.json*.damaged-*")) == ["nope", "nope either"]


def _references(data):
    return [member(row, "file", str, f"references[{i}]") for i, row in enumerate(member(data, "references", list, "data"))]


@pytest.mark.parametrize("wrong", [[1, 2, 3], {"references": [{"name": "no file"}]}, {"references": "x"}])
def test_wrong_shape_falls_back_to_the_backup_and_says_what_was_restored(tmp_path, wrong):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"references": [{"file": "a.png"}]}, version=1, validate=_references)
    save_json_atomic(path, wrong, version=1)  # valid JSON of the wrong shape, e.g. written by hand
    loaded = load_document(path, 1, validate=_references)
    assert loaded.data == ["a.png"]
    assert str(path) in loaded.problem and "backup" in loaded.problem and "restored" in loaded.problem
    assert len(list(tmp_path.glob("index.json.damaged-*"))) == 1  # kept, not lost
    save_json_atomic(path, {"references": []}, version=1, validate=_references)
    assert load_json(backup_path(path), version=1, validate=_references) == ["a.png"]  # the good backup stays


def test_a_wrong_shape_never_becomes_the_backup(tmp_path):
    path = tmp_path / "index.json"
    save_json_atomic(path, {"references": [{"file": "a.png"}]}, version=1, validate=_references)
    save_json_atomic(path, {"references": [{"file": "b.png"}]}, version=1, validate=_references)
    path.write_text(json.dumps({"version": 1, "data": {"references": [{"oops": 1}]}}))
    save_json_atomic(path, {"references": [{"file": "c.png"}]}, version=1, validate=_references)
    assert load_json(backup_path(path), version=1, validate=_references) == ["a.png"]
    assert list(tmp_path.glob("index.json.damaged-*"))


def test_a_newer_document_is_read_only_and_never_downgraded(tmp_path):
    path = tmp_path / "session.json"
    save_json_atomic(path, {"references": [{"file": "a.png"}], "new_field": 1}, version=2)
    before = path.read_bytes()
    loaded = load_document(path, 1, validate=_references)
    assert loaded.read_only and loaded.data == ["a.png"] and "newer" in loaded.problem and str(path) in loaded.problem
    with pytest.raises(DocumentTooNew):
        save_json_atomic(path, {"references": []}, version=1)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_schema_errors_name_the_place():
    with pytest.raises(SchemaError, match=r"references\[1\]: 'file' is missing"):
        _references({"references": [{"file": "a"}, {}]})


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


# Saves one small document over and over while other processes do the same; any exception fails the child.
RACER = """
import sys
from engine.persistence import load_document, save_json_atomic
path, me = sys.argv[1], int(sys.argv[2])
for n in range(int(sys.argv[3])):
    save_json_atomic(path, {"writer": me, "n": n}, version=1)
    assert load_document(path, 1).data["n"] >= 0
"""


def test_concurrent_writers_never_fail_and_always_leave_a_loadable_file(tmp_path):
    path = tmp_path / "index.json"
    writers = [subprocess.Popen([sys.executable, "-c", RACER, str(path), str(i), "200"], cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for i in range(6)]
    errors = [w.communicate(timeout=600)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 6, errors  # the old rename-to-.bak failed ~90 of these 1200
    assert load_json(path, version=1)["n"] == 199
    assert load_json(backup_path(path), version=1)["n"] >= 0
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_documents_are_written_with_the_users_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        save_json_atomic(tmp_path / "index.json", {"a": 1}, version=1)
        save_json_atomic(tmp_path / "index.json", {"a": 2}, version=1)
    finally:
        os.umask(old)
    for name in ("index.json", "index.json.bak"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_stale_leftovers_of_our_own_writes_are_removed_at_start(tmp_path):
    import os

    ours = [tmp_path / "sessions" / "ab" / "run-1.partial.png", tmp_path / "cache" / "analysis" / "0f" / ".tmp-x1.npz",
            tmp_path / "gallery" / "index.json.3f2a.tmp"]
    theirs = [tmp_path / "gallery" / "notes.tmp", tmp_path / "sessions" / "ab" / "run-1.png",
              tmp_path / "gallery" / "index.json.damaged-20260101-000000"]
    fresh = tmp_path / "sessions" / "ab" / "run-2.partial.png"
    old = time.time() - 3600
    for path in ours + theirs + [fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if path is not fresh:
            os.utime(path, (old, old))
    assert remove_stale_leftovers(tmp_path) == 3
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs + [fresh])  # not ours, or perhaps still being written


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
