"""DINOv2 patch tokens of an image, for stage 2's semantic score S_sem (SPEC "Stage 2").

The reference feeds the ORIGINAL image (not the 512 resize) through DINOv2's default processor: shortest side
256 bicubic, centre crop 224, ImageNet normalisation. The tokens then cover the centre crop while the region
blocks cover the whole image. Alignment "aligned" instead feeds the working-size picture (what stage 1 sees)
whole, resized without a crop to a token grid of its own aspect, one token per `token_block` pixels (16 x 16
tokens at 512 x 512, 16 x 24 at 512 x 768): tokens and region blocks then see the same pixels, for any shape.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..cache import DiskCache, cache_key
from ..errors import InvalidRequest
from ..images import pixel_sha256, resize_to

Alignment = Literal["center_crop", "aligned"]
TOKENS_NAMESPACE = "dinov2_tokens"


def resolved_alignment(setting: str, size_policy: str) -> Alignment:
    """MatchParams.sem_alignment with "auto" resolved: the reference's centre crop for the square size policy
    (the authors' behaviour), the whole picture aligned with the regions for any other."""
    if setting == "auto":
        return "center_crop" if size_policy == "square" else "aligned"
    return setting


def token_grid(size: tuple[int, int], token_block: int) -> tuple[int, int]:
    """(rows, cols) of the aligned token grid for a working size (width, height) in pixels."""
    width, height = size
    if width % token_block or height % token_block:
        raise InvalidRequest(f"A {width}x{height} working size is not a whole number of {token_block}-pixel "
                             f"DINOv2 blocks")
    return height // token_block, width // token_block


def dinov2_pixel_values(processor, image: Image.Image, alignment: Alignment = "center_crop",
                        size: tuple[int, int] = (512, 512), token_block: int = 32, patch: int = 14) -> torch.Tensor:
    """The processor's (1, 3, h, w) input for `image` under `alignment`; `size` is the working size (width, height)."""
    if alignment == "center_crop":
        batch = processor(images=image.convert("RGB"), return_tensors="pt")
    elif alignment == "aligned":
        rows, cols = token_grid(size, token_block)
        batch = processor(images=resize_to(image.convert("RGB"), size),
                          size={"height": rows * patch, "width": cols * patch}, do_center_crop=False,
                          return_tensors="pt")
    else:
        raise InvalidRequest(f"Unknown DINOv2 alignment {alignment!r} (use 'center_crop' or 'aligned')")
    return batch["pixel_values"]


def dinov2_tokens(model, processor, image: Image.Image, alignment: Alignment = "center_crop",
                  size: tuple[int, int] = (512, 512), token_block: int = 32) -> np.ndarray:
    """float32 (P, C) patch tokens of `last_hidden_state`, row-major over the patch grid, CLS (and any register
    tokens) dropped. P = 256 for a 224 input with patch 14; the grid has the aspect of the pixels fed."""
    patch = model.config.patch_size
    pixels = dinov2_pixel_values(processor, image, alignment, size, token_block, patch)
    n_patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
    param = next(model.parameters())
    with torch.inference_mode():
        hidden = model(pixel_values=pixels.to(device=param.device, dtype=param.dtype)).last_hidden_state[0]
    return hidden[-n_patches:].float().cpu().numpy()


def cached_dinov2_tokens(cache: DiskCache | None, model_id: str, model, processor, image: Image.Image,
                         alignment: Alignment = "center_crop", size: tuple[int, int] = (512, 512),
                         token_block: int = 32) -> np.ndarray:
    """`dinov2_tokens` through the disk cache, keyed by the image's pixel hash, the model id, the alignment (with the
    working size and block when aligned) and the processor class (transformers' PIL and torchvision backends
    resize differently)."""
    if cache is None:
        return dinov2_tokens(model, processor, image, alignment, size, token_block)
    key = cache_key(TOKENS_NAMESPACE, pixel_sha256(image), model_id, alignment,
                    [*size, token_block] if alignment == "aligned" else None, type(processor).__name__)
    entry = cache.get(key=key, namespace=TOKENS_NAMESPACE)
    if entry is not None:
        return entry[0]["tokens"]
    tokens = dinov2_tokens(model, processor, image, alignment, size, token_block)
    cache.put(key=key, namespace=TOKENS_NAMESPACE, arrays={"tokens": tokens},
              meta={"model_id": model_id, "alignment": alignment})
    return tokens
