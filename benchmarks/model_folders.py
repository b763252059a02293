"""Random-weight model folders in the real on-disk formats: the parts the tests' tiny models
(tests/tiny_models.py) and the benchmarks' full-size ones (benchmarks/bench_stages.py) share: the image
processors of the hub folders, SD1.5's model index, a CLIP tokenizer, and the VAE calibration that gives random
weights SD1.5's latent spread (SPEC, "Random-weight test models")."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
BICUBIC = 3

# The image processors of facebook/dinov2-base and the Depth Anything V2 hub folders.
DINOV2_PROCESSOR = {
    "image_processor_type": "BitImageProcessor", "do_convert_rgb": True, "do_resize": True,
    "size": {"shortest_edge": 256}, "resample": BICUBIC, "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD,
}
DEPTH_PROCESSOR = {
    "image_processor_type": "DPTImageProcessor", "do_resize": True, "size": {"height": 518, "width": 518},
    "keep_aspect_ratio": True, "ensure_multiple_of": 14, "resample": BICUBIC, "do_pad": False,
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD,
}
SD15_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1", "requires_safety_checker": False,
    "feature_extractor": [None, None], "image_encoder": [None, None], "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


def calibration_image(size: int = 256) -> Image.Image:
    """Seeded 8x8 colour noise upsampled bicubically, plus a diagonal colour ramp: has edges and gradients."""
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    blobs = np.asarray(Image.fromarray(noise).resize((size, size), Image.BICUBIC), dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    ramp = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                     np.full((size, size), 0.5, np.float32)], axis=-1)
    return Image.fromarray(np.clip(0.6 * blobs + 0.4 * 255 * ramp, 0, 255).astype(np.uint8))


def _image_tensor(image: Image.Image) -> torch.Tensor:
    """uint8 RGB -> (1, 3, H, W) in [-1, 1], the VAE's input range."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte -> printable character table, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    """A minimal CLIP BPE in SD1.5's hub layout (vocab.json, merges.txt, tokenizer_config.json): the 256 byte
    characters and their end-of-word forms, no merges, filler tokens up to SD1.5's vocabulary size, and SD1.5's
    special-token ids, so "" -> [49406, 49407 x 76]."""
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [f"<|filler_{i}|>" for i in range(len(tokens), vocab_size - 2)] + [CLIP_BOS, CLIP_EOS]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    save_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": CLIP_BOS, "eos_token": CLIP_EOS,
        "pad_token": CLIP_EOS, "unk_token": CLIP_EOS})


@torch.no_grad()
def calibrate_vae(vae) -> dict:
    """Scale the latent mean so the scaled latent of the calibration image has std 1; compensate the decoder."""
    def scaled_latent_std() -> float:
        latent = vae.encode(_image_tensor(calibration_image())).latent_dist.mean * vae.config.scaling_factor
        return float(latent.std())

    before = scaled_latent_std()
    gain = 1.0 / before
    channels = vae.config.latent_channels
    vae.quant_conv.weight[:channels] *= gain
    vae.quant_conv.bias[:channels] *= gain
    vae.post_quant_conv.weight /= gain
    return {"latent_gain": gain, "latent_std_before": before, "latent_std_after": scaled_latent_std()}


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
