"""Model loading: every source kind through the real loader, lazy-once loading, and parity of the inputs the
models see (empty-prompt embeddings, DINOv2 pixel values) with the authors' goldens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models import ModelBundle
from engine.params import ModelSource


def _parity_bundle(parity_root) -> ModelBundle:
    tiny = parity_root / "models-tiny"
    source = ModelSource(sd=str(tiny / "sd15"), dinov2=str(tiny / "dinov2"), depth=str(tiny / "depth"), offline=True)
    return ModelBundle(source, torch.device("cpu"), torch.float32)


@pytest.mark.parity
def test_empty_prompt_embeds_match_golden(parity_root):
    embeds = _parity_bundle(parity_root).empty_prompt_embeds()
    golden = np.load(parity_root / "golden" / "a_stage1" / "text_embeds.npy")
    assert embeds.shape == (1, 77, golden.shape[1])
    np.testing.assert_array_equal(embeds[0].numpy(), golden)


@pytest.mark.parity
def test_dinov2_processor_matches_golden(parity_root):
    _, processor = _parity_bundle(parity_root).dinov2
    image = Image.open(parity_root / "golden" / "inputs" / "content_0001.png").convert("RGB")
    pixels = processor(images=image, return_tensors="pt").pixel_values
    golden = np.load(parity_root / "golden" / "b_match" / "content" / "dinov2_pixel_values.npy")
    np.testing.assert_array_equal(pixels[0].numpy(), golden)
