"""Cheap RGB previews of SD1.5 latents, without the VAE (a full decode per step is far too slow).

A fixed linear map from the 4 latent channels to RGB, ComfyUI's `Latent2RGB` with the SD15 factors of
`comfy/latent_formats.py` (class `SD15`, `latent_rgb_factors`; no bias for SD15). They act on scaled
latents (x 0.18215), which is what the engine optimises.
"""
from __future__ import annotations

import numpy as np
import torch

# rows: latent channels 0-3; columns: R, G, B (ComfyUI comfy/latent_formats.py, SD15.latent_rgb_factors)
SD15_LATENT_RGB_FACTORS = np.array([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
], dtype=np.float32)


def latent_to_rgb(z: np.ndarray | torch.Tensor) -> np.ndarray:
    """A (4, H, W) latent (or (1, 4, H, W)) -> uint8 (H, W, 3): linear map, clamp to [-1, 1], rounded."""
    if isinstance(z, torch.Tensor):
        z = z.detach().float().cpu().numpy()
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 4:
        z = z[0]
    rgb = np.einsum("chw,ck->hwk", z, SD15_LATENT_RGB_FACTORS)
    return np.rint(np.clip(rgb, -1.0, 1.0) * 127.5 + 127.5).astype(np.uint8)
