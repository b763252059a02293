"""DINOv2 patch tokens of an image, for stage 2's semantic score S_sem (SPEC "Stage 2").

The reference feeds the ORIGINAL image (not the 512 resize) through DINOv2's default processor: shortest side
256 bicubic, centre crop 224, ImageNet normalisation. The tokens then cover the centre crop while the region
blocks cover the whole image; alignment "aligned" instead resizes the 512x512 image to the crop size without
cropping, so tokens and blocks see the same pixels (a documented, non-default variant).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..cache import DiskCache, cache_key
from ..errors import InvalidRequest
from ..images import pixel_sha256, resize_to_square

Alignment = Literal["center_crop", "aligned"]
TOKENS_NAMESPACE = "dinov2_tokens"


def dinov2_pixel_values(processor, image: Image.Image, alignment: Alignment = "center_crop",
                        image_size: int = 512) -> torch.Tensor:
    """The processor's (1, 3, h, w) input for `image` under `alignment`; `image_size` is the latent branch's size."""
    if alignment == "center_crop":
        batch = processor(images=image.convert("RGB"), return_tensors="pt")
    elif alignment == "aligned":
        crop = processor.crop_size
        square = resize_to_square(image.convert("RGB"), image_size)
        batch = processor(images=square, size={"height": crop["height"], "width": crop["width"]},
                          do_center_crop=False, return_tensors="pt")
    else:
        raise InvalidRequest(f"Unknown DINOv2 alignment {alignment!r} (use 'center_crop' or 'aligned')")
    return batch["pixel_values"]


def dinov2_tokens(model, processor, image: Image.Image, alignment: Alignment = "center_crop",
                  image_size: int = 512) -> np.ndarray:
    """float32 (P, C) patch tokens of `last_hidden_state`, row-major over the patch grid, CLS (and any register
    tokens) dropped. P = 256 for a 224 input with patch 14."""
    pixels = dinov2_pixel_values(processor, image, alignment, image_size)
    patch = model.config.patch_size
    n_patches = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
    param = next(model.parameters())
    with torch.inference_mode():
        hidden = model(pixel_values=pixels.to(device=param.device, dtype=param.dtype)).last_hidden_state[0]
    return hidden[-n_patches:].float().cpu().numpy()


def cached_dinov2_tokens(cache: DiskCache | None, model_id: str, model, processor, image: Image.Image,
                         alignment: Alignment = "center_crop", image_size: int = 512) -> np.ndarray:
    """`dinov2_tokens` through the disk cache, keyed by the image's pixel hash, the model id, the alignment and the
    processor class (transformers' PIL and torchvision backends resize differently)."""
    if cache is None:
        return dinov2_tokens(model, processor, image, alignment, image_size)
    key = cache_key(TOKENS_NAMESPACE, pixel_sha256(image), model_id, alignment,
                    image_size if alignment == "aligned" else None, type(processor).__name__)
    entry = cache.get(key=key, namespace=TOKENS_NAMESPACE)
    if entry is not None:
        return entry[0]["tokens"]
    tokens = dinov2_tokens(model, processor, image, alignment, image_size)
    cache.put(key=key, namespace=TOKENS_NAMESPACE, arrays={"tokens": tokens},
              meta={"model_id": model_id, "alignment": alignment})
    return tokens
