"""Stage 2 against the authors' outputs (../shared/parity/golden/b_match, README sections 6, 8, 9, 11).

Fed the golden stage-1 F_mix and final labels (so stage 1 is not under test here) and the golden input images
through the tiny random-weight DINOv2. Tolerances are README section 8's.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.images import load_image
from engine.stage2.matching import describe_regions, match_regions, stat_transformer
from engine.params import MatchParams, Stage1Params
from engine.stage2.dinov2_tokens import dinov2_pixel_values, dinov2_tokens
from engine.types import Analysis

ROLES = {"content": "content_0001.png", "style0": "style0_VanGogh001.png", "style1": "style1_C001.png"}
PARAMS = MatchParams()


@pytest.fixture(scope="module")
def golden(parity_root):
    """Per role: the image, an Analysis built from the golden stage-1 arrays, and our DINOv2 tokens."""
    import torch

    from engine.models import ModelBundle
    from engine.params import ModelSource

    source = ModelSource(dinov2=str(parity_root / "models-tiny" / "dinov2"), offline=True)
    model, processor = ModelBundle(source, torch.device("cpu"), torch.float32).dinov2
    out = {}
    for role, name in ROLES.items():
        stage1 = parity_root / "golden" / "a_stage1" / role
        zeros = np.zeros((4, 64, 64), np.float32)
        analysis = Analysis(role, np.load(stage1 / "labels_step10_final.npy"), np.load(stage1 / "fmix.npy"), None,
                            zeros, zeros, Stage1Params(), "parity models-tiny")
        image = load_image(parity_root / "golden" / "inputs" / name)
        out[role] = {"image": image, "analysis": analysis, "tokens": dinov2_tokens(model, processor, image),
                     "dir": parity_root / "golden" / "b_match" / role}
    return {"roles": out, "processor": processor, "dir": parity_root / "golden" / "b_match"}


def test_dinov2_inputs_and_tokens(golden):
    for role, data in golden["roles"].items():
        pixels = dinov2_pixel_values(golden["processor"], data["image"])[0].numpy()
        np.testing.assert_allclose(pixels, np.load(data["dir"] / "dinov2_pixel_values.npy"), atol=1e-6,
                                   err_msg=role)
        np.testing.assert_allclose(data["tokens"], np.load(data["dir"] / "dinov2_tokens.npy")[1:], atol=1e-5,
                                   err_msg=role)


def test_stat_transformer_weights_are_the_reference_initialisation(golden):
    model = stat_transformer(64, PARAMS)
    with np.load(golden["dir"] / "stat_transformer_weights.npz") as weights:
        state = model.state_dict()
        assert sorted(state) == sorted(weights.files)
        for name in weights.files:
            np.testing.assert_array_equal(state[name].numpy(), weights[name], err_msg=name)


def test_regions_and_descriptors(golden):
    for role, data in golden["roles"].items():
        described = describe_regions(data["analysis"], data["tokens"], PARAMS)
        expected = json.loads((data["dir"] / "regions.json").read_text())["regions"]
        assert list(described) == [r["region"] for r in expected]
        for desc, ref in zip(described.values(), expected):
            geometry = desc.geometry
            assert (geometry.pixels, geometry.kept_tokens.size) == (ref["pixels"], ref["dinov2_tokens_kept"])
            np.testing.assert_allclose(geometry.centre, ref["circle_center_rc"], rtol=1e-12)
            assert geometry.radius == pytest.approx(ref["circle_radius"], rel=1e-12)
        for kind in ("stat", "sem"):
            ours = np.stack([getattr(d, kind) for d in described.values()])
            theirs = np.load(data["dir"] / f"{kind}_descriptors.npy")
            assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max(), (role, kind)


def test_pair_scores_and_matches(golden):
    roles = golden["roles"]
    table = match_regions(roles["content"]["analysis"], roles["content"]["tokens"],
                          [roles["style0"]["analysis"], roles["style1"]["analysis"]],
                          [roles["style0"]["tokens"], roles["style1"]["tokens"]], PARAMS)
    expected = json.loads((golden["dir"] / "pairs.json").read_text())["pairs"]
    assert [(p.content_region, p.style_index, p.style_region) for p in table.pairs] == \
        [(p["content_region"], p["style_index"], p["style_region"]) for p in expected]
    for ours, ref in zip(table.pairs, expected):
        for field, key in (("s_stat", "S_stat"), ("s_sem", "S_sem"), ("s_pos", "S_pos"), ("score", "S")):
            assert getattr(ours, field) == pytest.approx(ref[key], abs=1e-5), (ours, key)
    matches = json.loads((golden["dir"] / "matches.json").read_text())["matches"]
    assert {m: (r.style_index, r.style_region) for m, r in table.matches.items()} == \
        {m["content_region"]: (m["style_index"], m["style_region"]) for m in matches}
    for m in matches:
        assert table.matches[m["content_region"]].score == pytest.approx(m["score"], abs=1e-5)
