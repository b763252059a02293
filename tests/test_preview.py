"""Latent -> RGB previews (ComfyUI's SD15 factors)."""
from __future__ import annotations

import numpy as np
import torch

from engine.preview import SD15_LATENT_RGB_FACTORS, latent_to_rgb


def test_each_channel_maps_through_its_factor_row_rounded():
    for channel in range(4):
        z = np.zeros((4, 64, 64), np.float32)
        z[channel] = 1.0
        rgb = latent_to_rgb(z)
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        expected = np.rint(SD15_LATENT_RGB_FACTORS[channel] * 127.5 + 127.5)
        assert (rgb == expected.astype(np.uint8)).all()


def test_out_of_range_values_clamp_and_tensors_with_batch_work():
    z = torch.zeros(1, 4, 8, 8)
    z[0, 3] = 10.0  # channel 3 has negative factors for R, G and B: all far below -1
    rgb = latent_to_rgb(z.requires_grad_(True))
    assert rgb.shape == (8, 8, 3)
    assert (rgb == 0).all()
    assert (latent_to_rgb(-z.detach()) == 255).all()


def test_zero_latent_is_mid_grey():
    assert (latent_to_rgb(np.zeros((4, 4, 4))) == 128).all()
