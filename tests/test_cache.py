"""The shared disk cache: keys, round trips, atomic writes, damaged entries, Analysis save/load, the size budget with
least-recently-used eviction (one process and two at once), clearing, and what an analysis entry stores."""
from __future__ import annotations

import dataclasses
import multiprocessing
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.cache import (ANALYSIS_NAMESPACE, CACHE_ENV, CacheFolderUnsafe, DiskCache, cache_entries, cache_key,
                          cache_size, clear_cache, default_cache_dir, load_analysis, save_analysis)
from engine.params import Stage1Params
from engine.types import Analysis, ImageRef
from tests.conftest import synthetic_image


def test_key_is_canonical_and_sensitive_to_every_part():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    base = cache_key("img", Stage1Params())
    assert base == cache_key("img", Stage1Params())
    assert base != cache_key("img", dataclasses.replace(Stage1Params(), use_depth=False))
    assert base != cache_key("img2", Stage1Params())
    with pytest.raises(TypeError):
        cache_key(object())


def test_key_does_not_depend_on_where_the_params_class_lives():
    """Moving a module (engine/ by stage) keeps every cache entry valid: a key names a params class, not its module."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(Stage1Params)]
    moved = dataclasses.make_dataclass("Stage1Params", fields, frozen=True)
    moved.__module__ = "engine.somewhere_else"
    assert cache_key("img", moved()) == cache_key("img", Stage1Params())


def test_default_dir_is_the_platform_cache_folder_unless_the_environment_names_one(monkeypatch, tmp_path):
    from platformdirs import user_cache_dir

    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir() == Path(user_cache_dir("StyleGallery", appauthor=False))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"


def test_round_trip_and_miss(tmp_path):
    cache = DiskCache(tmp_path)
    assert cache.get("0" * 64) is None
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array([3, 1], dtype=np.int64)}
    cache.put("ab" * 32, arrays, {"note": "hé", "n": 2}, namespace="stage")
    got = cache.get("ab" * 32, namespace="stage")
    assert got is not None
    loaded, meta = got
    assert meta == {"note": "hé", "n": 2}
    assert set(loaded) == {"x", "ids"} and np.array_equal(loaded["x"], arrays["x"])
    assert loaded["ids"].dtype == np.int64
    assert cache.get("ab" * 32) is None  # namespaces are separate
    assert not list(tmp_path.rglob(".tmp-*"))  # nothing left from the atomic write


def test_damaged_entry_is_a_miss_and_is_removed(tmp_path):
    cache = DiskCache(tmp_path)
    path = cache.put("cd" * 32, {"x": np.zeros(3)})
    path.write_bytes(path.read_bytes()[:40])
    assert cache.get("cd" * 32) is None
    assert not path.exists()


def test_failed_write_leaves_the_old_entry(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path)
    cache.put("ef" * 32, {"x": np.ones(2)})

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("engine.cache.os.replace", boom)
    with pytest.raises(OSError):
        cache.put("ef" * 32, {"x": np.zeros(2)})
    monkeypatch.undo()
    assert np.array_equal(cache.get("ef" * 32)[0]["x"], np.ones(2))
    assert not list(tmp_path.rglob(".tmp-*"))


def test_analysis_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    params = dataclasses.replace(Stage1Params(), k_max=5, merge_rule="union_find")
    analysis = Analysis(image_sha256="f" * 64, labels=rng.integers(1, 4, (64, 64)),
                        fmix=rng.normal(size=(8, 64, 64)).astype(np.float32), depth=None,
                        c15=rng.normal(size=(4, 64, 64)).astype(np.float32),
                        vae_latent=rng.normal(size=(4, 64, 64)).astype(np.float32), params=params,
                        model_id="tiny", silhouette={2: 0.5, 3: 0.25}, chosen_k=2,
                        steps={"step6_merge": rng.integers(0, 3, (64, 64))})
    cache = DiskCache(tmp_path)
    save_analysis(cache, "12" * 32, analysis)
    loaded = load_analysis(cache, "12" * 32)
    assert loaded.params == params and loaded.silhouette == {2: 0.5, 3: 0.25} and loaded.chosen_k == 2
    assert loaded.depth is None and loaded.model_id == "tiny" and loaded.image_sha256 == "f" * 64
    for name in ("labels", "fmix", "c15", "vae_latent"):
        assert np.array_equal(getattr(loaded, name), getattr(analysis, name))
    assert np.array_equal(loaded.steps["step6_merge"], analysis.steps["step6_merge"])
    assert load_analysis(cache, "34" * 32) is None


def _analysis(rng, grid=(64, 64), **arrays) -> Analysis:
    fields = dict(labels=rng.integers(1, 4, grid), fmix=rng.normal(size=(8, *grid)).astype(np.float32),
                  depth=rng.random(grid).astype(np.float32), c15=rng.normal(size=(4, *grid)).astype(np.float32),
                  vae_latent=rng.normal(size=(4, *grid)).astype(np.float32))
    fields.update(arrays)
    return Analysis(image_sha256="f" * 64, params=Stage1Params(), model_id="tiny", chosen_k=2, **fields)


def test_a_consistent_non_square_analysis_is_served(tmp_path):
    cache = DiskCache(tmp_path)
    save_analysis(cache, "ab" * 32, _analysis(np.random.default_rng(1), grid=(48, 80)))
    assert load_analysis(cache, "ab" * 32).labels.shape == (48, 80)


@pytest.mark.parametrize("damage", ["3x3 labels", "huge id", "negative id", "float labels", "nan latent",
                                    "c15 of another grid", "infinite depth", "native-size depth"])
def test_a_well_formed_entry_with_wrong_content_is_recomputed(tmp_path, damage):
    rng = np.random.default_rng(2)
    labels = rng.integers(1, 4, (64, 64))
    latent = rng.normal(size=(4, 64, 64)).astype(np.float32)
    arrays = {
        "3x3 labels": {"labels": labels[:3, :3]},
        "huge id": {"labels": np.where(labels == 1, 2**40, labels)},
        "negative id": {"labels": -labels},
        "float labels": {"labels": labels.astype(np.float32)},
        "nan latent": {"vae_latent": np.where(latent > 2, np.nan, latent).astype(np.float32)},
        "c15 of another grid": {"c15": latent[:, :32]},
        "infinite depth": {"depth": np.full((64, 64), np.inf, np.float32)},
        "native-size depth": {"depth": rng.random((512, 512)).astype(np.float32)},  # the cache keeps the grid's
    }[damage]
    cache = DiskCache(tmp_path)
    save_analysis(cache, "cd" * 32, _analysis(rng, **({"labels": labels, "vae_latent": latent} | arrays)))
    assert load_analysis(cache, "cd" * 32) is None


# Stage 1 on the tiny models at a small working size with few steps: the cache's mechanics, not the method, are tested
QUICK_STAGE1 = dataclasses.replace(Stage1Params(), image_size=128, inversion_steps=2, k_max=3, kmeans_restarts=2,
                                   use_depth=False)


def _analysis_entries(root: Path) -> set[Path]:
    return {entry.path for entry in cache_entries(root) if entry.path.parent.parent.name == ANALYSIS_NAMESPACE}


def test_analyses_stay_within_the_budget_and_the_least_recently_used_go_first(tiny_model_source, tmp_path):
    """A series of analyses (tiny models) never leaves the cache over its budget; reading an entry makes it the
    last to go: after A, B, a read of A, then C, B is evicted and A survives."""
    from engine.api import Engine

    photos = [ImageRef(synthetic_image(tmp_path / f"photo{seed}.png", seed)) for seed in range(4)]
    engine = Engine(tiny_model_source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")
    engine.analyze(photos[0], QUICK_STAGE1)
    (first,) = _analysis_entries(tmp_path / "cache")
    engine.cache.budget_bytes = int(2.5 * first.stat().st_size)  # room for two analyses, not three
    written = [first]
    for photo in photos[1:]:
        before = _analysis_entries(tmp_path / "cache")
        time.sleep(0.02)  # file times have a coarse clock on some systems: keep the order of uses unambiguous
        if photo is photos[2]:
            engine.analyze(photos[0], QUICK_STAGE1)  # a cache hit: A is now the most recently used
            time.sleep(0.02)
        engine.analyze(photo, QUICK_STAGE1)
        assert cache_size(tmp_path / "cache") <= engine.cache.budget_bytes
        (new,) = _analysis_entries(tmp_path / "cache") - before
        written.append(new)
        if photo is photos[2]:
            assert _analysis_entries(tmp_path / "cache") == {written[0], written[2]}  # B went, A (read) stayed
    assert _analysis_entries(tmp_path / "cache") == {written[2], written[3]}  # then A, unread since, went too
    assert load_analysis(engine.cache, written[3].stem) is not None


def test_a_read_in_another_process_counts_as_a_use(tmp_path):
    """The last use is kept in the entry file itself, so a hit in one process protects the entry from another's
    eviction (two DiskCache objects on one folder stand for two processes)."""
    writer, reader = DiskCache(tmp_path), DiskCache(tmp_path)
    for key in ("aa", "bb"):
        writer.put(key * 32, {"x": np.zeros(1000)})
        time.sleep(0.02)  # file times have a coarse clock on some systems: keep the order of uses unambiguous
    assert reader.get("aa" * 32) is not None
    time.sleep(0.02)
    writer.budget_bytes = int(1.25 * cache_size(tmp_path))  # room for two entries, not three
    writer.put("cc" * 32, {"x": np.zeros(1000)})
    assert {entry.path.stem for entry in cache_entries(tmp_path)} == {"aa" * 32, "cc" * 32}


def test_the_entry_just_written_and_those_just_read_are_never_evicted(tmp_path):
    cache = DiskCache(tmp_path, budget_bytes=1)  # smaller than any entry
    cache.put("aa" * 32, {"x": np.zeros(100)})
    cache.put("bb" * 32, {"x": np.zeros(100)})
    assert [entry.path.stem for entry in cache_entries(tmp_path)] == ["bb" * 32]  # only the one just written stays
    assert cache.get("bb" * 32) is not None
    cache.put("cc" * 32, {"x": np.zeros(100)})  # the operation that read bb still holds it
    assert {entry.path.stem for entry in cache_entries(tmp_path)} == {"bb" * 32, "cc" * 32}
    cache.put("dd" * 32, {"x": np.zeros(100)})
    assert {entry.path.stem for entry in cache_entries(tmp_path)} == {"dd" * 32}


def test_eviction_tolerates_entries_deleted_by_another_process(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path, budget_bytes=1)
    for key in ("aa", "bb", "cc"):
        cache.put(key * 32, {"x": np.zeros(100)})
    real_unlink = Path.unlink

    def raced(path, missing_ok=False):  # another process deletes each entry just before this one does
        real_unlink(path)
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", raced)
    for key in ("dd", "ee"):
        cache.put(key * 32, {"x": np.zeros(100)})
    monkeypatch.undo()
    assert [entry.path.stem for entry in cache_entries(tmp_path)] == ["ee" * 32]


_KEYS = [f"{index:02x}" * 32 for index in range(24)]
_ENTRY_FLOATS = 4000


def _expected(key: str) -> np.ndarray:
    """The content every writer stores under `key`: a reader can tell a whole entry from a damaged or mixed one."""
    return np.random.default_rng(int(key[:8], 16)).normal(size=_ENTRY_FLOATS)


def _hammer(root: str, budget: int, seed: int, start, operations: int) -> None:
    """One process's share of the two-process test: random puts and gets over a few keys, each hit checked."""
    rng = np.random.default_rng(seed)
    cache = DiskCache(root, budget)
    start.wait()
    for _ in range(operations):
        key = _KEYS[rng.integers(len(_KEYS))]
        if rng.random() < 0.5:
            cache.put(key, {"x": _expected(key), "ids": np.arange(100)}, {"key": key}, namespace="stage")
        else:
            entry = cache.get(key, namespace="stage")
            if entry is not None and not (np.array_equal(entry[0]["x"], _expected(key)) and entry[1] == {"key": key}):
                raise SystemExit(f"entry {key[:8]} read back wrong")


def test_two_processes_sharing_the_cache_corrupt_nothing(tmp_path):
    """Two processes write, read and evict in one folder at once (a budget of a few entries, so most puts evict):
    neither reads a wrong or half-written entry, and afterwards every entry loads whole and the budget holds."""
    entry_size = DiskCache(tmp_path / "probe").put(_KEYS[0], {"x": _expected(_KEYS[0]), "ids": np.arange(100)},
                                                   {"key": _KEYS[0]}, namespace="stage").stat().st_size
    budget = 5 * entry_size
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_hammer, args=(str(tmp_path / "cache"), budget, seed, start, 300))
               for seed in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    entries = cache_entries(tmp_path / "cache")
    assert entries and sum(entry.size for entry in entries) <= budget + entry_size  # one put may cross the other's scan
    reader = DiskCache(tmp_path / "cache", budget)
    for entry in entries:
        arrays, meta = reader.get(entry.path.stem, namespace="stage")
        assert np.array_equal(arrays["x"], _expected(entry.path.stem)) and meta == {"key": entry.path.stem}
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_clear_deletes_only_the_cache_entries(tmp_path):
    cache = DiskCache(tmp_path)
    for key, namespace in (("aa", "analysis"), ("bb", "dinov2_tokens"), ("cc", "draft_style_vector")):
        cache.put(key * 32, {"x": np.zeros(1000)}, namespace=namespace)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "analysis" / "photo.npz").write_bytes(b"mine too")
    size = cache_size(tmp_path)
    assert clear_cache(tmp_path) == size > 0
    assert cache_entries(tmp_path) == []
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "analysis", "analysis/photo.npz", "notes.txt"]


def test_clear_refuses_the_home_folder_a_root_and_their_parents(tmp_path, monkeypatch):
    home = tmp_path / "home" / "artist"
    DiskCache(home).put("aa" * 32, {"x": np.zeros(10)}, namespace="analysis")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for folder in (home, home.parent, Path(home.anchor), home / ".." / "artist"):
        with pytest.raises(CacheFolderUnsafe):
            clear_cache(folder)
    assert len(cache_entries(home)) == 1


def test_an_analysis_entry_keeps_the_depth_at_the_label_grid_and_deflates_label_maps(tiny_model_source, tmp_path):
    """Never a full-resolution depth map per photo: a 640 x 480 photo's entry holds the depth at the label grid,
    and the label maps are stored compressed; the loaded analysis has the labels the computed one had."""
    from engine.api import Engine
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.open(synthetic_image(tmp_path / "small.png", 5)).resize((640, 480)).save(photo)
    engine = Engine(tiny_model_source, device="cpu", precision="fp32", cache_dir=tmp_path / "cache")
    computed = engine.analyze(ImageRef(photo), dataclasses.replace(QUICK_STAGE1, use_depth=True))
    assert computed.depth.shape == (480, 640)  # as computed: the native size
    (entry,) = _analysis_entries(tmp_path / "cache")
    with zipfile.ZipFile(entry) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert kinds["labels.npy"] == kinds["steps.step5_kmeans_per_k.npy"] == zipfile.ZIP_DEFLATED
    loaded = engine.analyze(ImageRef(photo), dataclasses.replace(QUICK_STAGE1, use_depth=True))
    assert loaded.depth.shape == loaded.labels.shape
    assert np.array_equal(loaded.labels, computed.labels)
