"""Depth for stage 1, step 7: transformers' Depth Anything raw prediction on the ORIGINAL image.

The raw float output (relative inverse depth, larger = nearer) is resized to the image's native size
bilinearly with `align_corners=True`, as the reference's `infer_image` does; no 8-bit quantisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class DepthResult:
    raw: torch.Tensor  # float32 (h, w): the model's predicted_depth on its own input size
    depth: torch.Tensor  # float32 (H, W): resized to the image's native size


@torch.no_grad()
def predict_depth(model: torch.nn.Module, processor, image: Image.Image) -> DepthResult:
    """Run the depth model with its own image processor and resize the prediction to `image.size`."""
    param = next(model.parameters())
    inputs = processor(images=image, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(device=param.device, dtype=param.dtype)
    raw = model(pixel_values=pixel_values).predicted_depth.float()
    width, height = image.size
    depth = F.interpolate(raw[:, None], size=(height, width), mode="bilinear", align_corners=True)[0, 0]
    return DepthResult(raw=raw[0], depth=depth)
