"""DINOv2 token extraction mechanics: CLS dropped, the two alignments see different pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import InvalidRequest
from engine.stage2.dinov2_tokens import dinov2_pixel_values, dinov2_tokens

# dinov2-base's processor configuration (SPEC: shortest side 256 bicubic, centre crop 224, ImageNet statistics)
PROCESSOR_CONFIG = dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                        do_center_crop=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def processor():
    from transformers import BitImageProcessorPil

    return BitImageProcessorPil(**PROCESSOR_CONFIG)


@pytest.fixture(scope="module")
def wide_image() -> Image.Image:
    """1024x512, the left eighth red, the rest blue: the centre crop never sees the red strip."""
    pixels = np.zeros((512, 1024, 3), np.uint8)
    pixels[:, :, 2] = 255
    pixels[:, :128] = (255, 0, 0)
    return Image.fromarray(pixels)


def test_alignments_cover_different_pixels(processor, wide_image):
    cropped = dinov2_pixel_values(processor, wide_image, "center_crop")
    aligned = dinov2_pixel_values(processor, wide_image, "aligned")
    assert cropped.shape == aligned.shape == (1, 3, 224, 224)
    red_normalised = (1.0 - 0.485) / 0.229
    assert aligned[0, 0, :, 0].mean().item() == pytest.approx(red_normalised, abs=1e-3)
    assert cropped[0, 0, :, 0].max().item() < 0  # no red left in the crop
    with pytest.raises(InvalidRequest, match="alignment"):
        dinov2_pixel_values(processor, wide_image, "stretch")


def test_tokens_drop_cls_and_keep_row_major_patches(processor, wide_image):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, image_size=224, patch_size=14)).eval()
    tokens = dinov2_tokens(model, processor, wide_image, "aligned")
    with torch.no_grad():
        hidden = model(pixel_values=dinov2_pixel_values(processor, wide_image, "aligned")).last_hidden_state[0]
    assert tokens.shape == (256, 8) and tokens.dtype == np.float32
    np.testing.assert_array_equal(tokens, hidden[1:].numpy())


def test_token_cache_hits_by_pixels_model_and_alignment(processor, wide_image, tmp_path):
    from engine.cache import DiskCache
    from engine.stage2.dinov2_tokens import cached_dinov2_tokens

    class CountingModel(torch.nn.Module):
        """Stands in for DINOv2: counts forward calls, returns CLS + 256 patch tokens."""

        config = type("Config", (), {"patch_size": 14})()

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.calls = 0

        def forward(self, pixel_values):
            self.calls += 1
            means = pixel_values.mean(dim=(1, 2, 3))
            return type("Out", (), {"last_hidden_state": means[:, None, None] * self.scale * torch.ones(1, 257, 4)})

    cache, model = DiskCache(tmp_path), CountingModel()
    first = cached_dinov2_tokens(cache, "tiny", model, processor, wide_image)
    again = cached_dinov2_tokens(cache, "tiny", model, processor, wide_image.copy())
    assert model.calls == 1 and first.shape == (256, 4)
    np.testing.assert_array_equal(first, again)
    cached_dinov2_tokens(cache, "tiny", model, processor, wide_image, "aligned")
    cached_dinov2_tokens(cache, "other-model", model, processor, wide_image)
    cached_dinov2_tokens(cache, "tiny", model, processor, wide_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert model.calls == 4
