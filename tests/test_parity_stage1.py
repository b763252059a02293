"""Stage 1 against the authors' outputs (../shared/parity/golden/a_stage1) on the parity tiny models.

Tolerances are those of the parity README, section 8: label maps, chosen k and region sizes exact at every
step; vae_latent, inversion latents, C15 and F_mix 1e-4; depth 1e-5; silhouettes 1e-5; X_pca 1e-2.
The goldens were made with 2 torch threads, so the analyses run with 2 threads too.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.images import load_image
from engine.params import ModelSource, Stage1Params
from engine.stage1.segment import analyze_images

ROLES = {"content": "content_0001.png", "style0": "style0_VanGogh001.png", "style1": "style1_C001.png"}
LABEL_STEPS = {"step5_kmeans_per_k": "labels_step5_kmeans_per_k", "step5_kmeans": "labels_step5_kmeans",
               "step6_merge": "labels_step6_merge", "step7_depth_split": "labels_step7_depth_split",
               "step8_remerge": "labels_step8_remerge"}


@pytest.fixture(scope="module")
def analyses(parity_root):
    """The three golden inputs analysed once with default settings, intermediates kept (inverted as one batch)."""
    from engine.models import ModelBundle

    models = parity_root / "models-tiny"
    source = ModelSource(sd=str(models / "sd15"), dinov2=str(models / "dinov2"), depth=str(models / "depth"),
                         offline=True)
    bundle = ModelBundle(source, torch.device("cpu"), torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # All three in one call: their inversions run as one batch, which must not move any label.
        images = [(load_image(parity_root / "golden" / "inputs" / name), None) for name in ROLES.values()]
        return dict(zip(ROLES, analyze_images(bundle, images, Stage1Params(), keep_intermediates=True)))
    finally:
        torch.set_num_threads(threads)


def max_diff(ours: np.ndarray, golden_file) -> float:
    golden = np.load(golden_file)
    assert ours.shape == golden.shape, golden_file.name
    return float(np.abs(ours.astype(np.float64) - golden.astype(np.float64)).max())


@pytest.mark.parametrize("role", list(ROLES))
def test_stage1_matches_golden(analyses, parity_root, role):
    result = analyses[role]
    golden = parity_root / "golden" / "a_stage1" / role
    info = json.loads((golden / "info.json").read_text())

    for ours, name in LABEL_STEPS.items():
        assert np.array_equal(result.steps[ours], np.load(golden / f"{name}.npy")), name
    assert np.array_equal(result.labels, np.load(golden / "labels_step10_final.npy"))
    assert result.chosen_k == info["chosen_k"]
    assert result.region_sizes() == {int(k): v for k, v in info["final_regions"].items()}
    golden_scores = {row["k"]: row["score"] for row in info["silhouette"]}
    assert set(result.silhouette) == set(golden_scores)
    assert max(abs(result.silhouette[k] - golden_scores[k]) for k in golden_scores) <= 1e-5

    floats = {
        "vae_latent.npy": (result.vae_latent, 1e-4), "c15.npy": (result.c15, 1e-4),
        "inversion_latents.npy": (result.steps["inversion_latents"], 1e-4), "fmix.npy": (result.fmix, 1e-4),
        "depth_model_output.npy": (result.steps["depth_model_output"], 1e-5), "depth.npy": (result.depth, 1e-5),
        "x_pca.npy": (result.steps["x_pca"], 1e-2),
    }
    diffs = {name: max_diff(ours, golden / name) for name, (ours, _) in floats.items()}
    assert all(diffs[name] <= tol for name, (_, tol) in floats.items()), diffs
