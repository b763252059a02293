"""The shared disk cache: keys, round trips, atomic writes, damaged entries, Analysis save/load."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.cache import DiskCache, cache_key, default_cache_dir, load_analysis, save_analysis
from engine.params import Stage1Params
from engine.types import Analysis


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


def test_default_dir_is_a_user_data_folder():
    path = default_cache_dir()
    assert path.is_absolute() and "StyleGallery" in str(path)


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
                  depth=rng.random((96, 80)).astype(np.float32), c15=rng.normal(size=(4, *grid)).astype(np.float32),
                  vae_latent=rng.normal(size=(4, *grid)).astype(np.float32))
    fields.update(arrays)
    return Analysis(image_sha256="f" * 64, params=Stage1Params(), model_id="tiny", chosen_k=2, **fields)


def test_a_consistent_non_square_analysis_is_served(tmp_path):
    cache = DiskCache(tmp_path)
    save_analysis(cache, "ab" * 32, _analysis(np.random.default_rng(1), grid=(48, 80)))
    assert load_analysis(cache, "ab" * 32).labels.shape == (48, 80)


@pytest.mark.parametrize("damage", ["3x3 labels", "huge id", "negative id", "float labels", "nan latent",
                                    "c15 of another grid", "infinite depth"])
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
        "infinite depth": {"depth": np.full((96, 80), np.inf, np.float32)},
    }[damage]
    cache = DiskCache(tmp_path)
    save_analysis(cache, "cd" * 32, _analysis(rng, **({"labels": labels, "vae_latent": latent} | arrays)))
    assert load_analysis(cache, "cd" * 32) is None
