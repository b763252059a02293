"""Tiny random-weight models in the real on-disk formats, built from configs in a few seconds.

The architectures are those of ../shared/parity/models-tiny (its README, section 1): SD1.5's block types and order
with tiny widths (so exactly 16 self-attention layers in SD1.5's order, 8 heads each), a 2-layer DINOv2 of width 32
with dinov2-base's image processor, and a relative Depth Anything with Depth Anything V2's processor. Each
component is initialised with its library's default initialisation right after `torch.manual_seed(1 + k)`
(k = 1 UNet, 2 VAE, 3 text encoder, 4 DINOv2, 5 depth), as the parity models were.

Calibration (SPEC, "Random-weight test models"): random weights make the method's absolute thresholds meaningless
(scaled VAE latents about 25x smaller than SD1.5's, depth near 1e-7). Two output gains are therefore MEASURED here,
in code, on a fixed synthetic image (`calibration_image`: seeded 8x8 noise upsampled bicubically to 256x256 plus a
colour ramp): the mean half of the VAE's `quant_conv` is multiplied by g so that the scaled latent has standard
deviation 1 on that image, `post_quant_conv.weight` by 1/g (decoding is unchanged); the depth head's last
convolution (`head.conv3`, before the final ReLU) is rescaled affinely so that its output has mean 2 and standard
deviation 1 on that image. The gains are written to `manifest.json`. Nothing else is changed.

Besides the diffusers folder `sd15/`, `sd15.safetensors` holds the same SD weights as ONE checkpoint in the
original Stable Diffusion (LDM) key layout that artists' files use, so the single-file loader is tested on the
format it meets in practice. diffusers ships only the LDM -> diffusers direction, so `_ldm_state_dict` holds the
inverse mapping (after diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py).
"""
from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.model_folders import (DEPTH_PROCESSOR, DINOV2_PROCESSOR, SD15_MODEL_INDEX, calibrate_vae,
                                     calibration_image, save_json, write_tokenizer)

LDM_UNET_PREFIX = "model.diffusion_model."
LDM_VAE_PREFIX = "first_stage_model."
LDM_TEXT_PREFIX = "cond_stage_model.transformer.text_model."  # the transformers 4 layout real files use

UNET_CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64, 64, 64),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(32, 32, 64, 64),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
)
# Token ids 0/2 as in SD1.5's own text_encoder/config.json (the real ids are the tokenizer's 49406/49407).
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=77, projection_dim=32, bos_token_id=0, eos_token_id=2, pad_token_id=1)
DINOV2_CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, patch_size=14, image_size=518)
DEPTH_BACKBONE_CONFIG = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, patch_size=14,
                             image_size=518, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
DEPTH_CONFIG = dict(reassemble_hidden_size=32, patch_size=14, neck_hidden_sizes=[16, 32, 64, 64],
                    fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative")


def _seeded(k: int, build):
    torch.manual_seed(1 + k)
    return build().eval()


@torch.no_grad()
def calibrate_depth(model, processor) -> dict:
    """Rescale head.conv3 affinely so its output (before the final ReLU) has mean 2 and std 1 on the image."""
    captured = []
    hook = model.head.conv3.register_forward_hook(lambda _m, _i, out: captured.append(out))
    pixels = processor(images=calibration_image(), return_tensors="pt").pixel_values
    model(pixel_values=pixels)
    hook.remove()
    mean, std = float(captured[0].mean()), float(captured[0].std())
    scale, shift = 1.0 / std, 2.0 - mean / std
    model.head.conv3.weight *= scale
    model.head.conv3.bias.copy_(model.head.conv3.bias * scale + shift)
    return {"scale": scale, "shift": shift, "output_mean_before": mean, "output_std_before": std}


def _unet_ldm_names(layers_per_block: int = 2) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(LDM, diffusers) prefix pairs of SD1.5's UNet: whole-key renames, then block prefixes."""
    keys = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
            ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out.")]
    blocks = []
    per = layers_per_block + 1
    for i in range(4):
        for j in range(layers_per_block):
            blocks.append((f"input_blocks.{per * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if i < 3:
                blocks.append((f"input_blocks.{per * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(per):
            blocks.append((f"output_blocks.{per * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i > 0:
                blocks.append((f"output_blocks.{per * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < 3:
            blocks.append((f"input_blocks.{per * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            blocks.append((f"output_blocks.{per * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    blocks.append(("middle_block.1.", "mid_block.attentions.0."))
    blocks += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    return keys, blocks


UNET_RESNET_PARTS = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
                     ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]
VAE_ATTENTION_PARTS = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                       ("proj_out.", "to_out.0.")]


def _vae_ldm_names() -> list[tuple[str, str]]:
    """(LDM, diffusers) name pairs of the VAE (decoder blocks run in reverse order in LDM)."""
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(4):
        pairs += [(f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}.") for j in range(2)]
        if i < 3:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{3 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        pairs += [(f"decoder.up.{3 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}.") for j in range(3)]
    pairs += [(f"mid.block_{i + 1}.", f"mid_block.resnets.{i}.") for i in range(2)]
    return pairs


def _rename(name: str, pairs: list[tuple[str, str]]) -> str:
    for ldm, diffusers in pairs:
        name = name.replace(diffusers, ldm)
    return name


def _ldm_state_dict(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """The three models' weights as one original-layout SD1.5 checkpoint."""
    keys, blocks = _unet_ldm_names(unet.config.layers_per_block)
    whole = dict((d, s) for s, d in keys)
    out = {}
    for name, tensor in unet.state_dict().items():
        prefix = next((p for p in whole if name.startswith(p)), None)
        new = whole[prefix] + name[len(prefix):] if prefix else name
        if "resnets" in name:
            new = _rename(new, UNET_RESNET_PARTS)
        out[LDM_UNET_PREFIX + _rename(new, blocks)] = tensor
    vae_pairs = _vae_ldm_names()
    for name, tensor in vae.state_dict().items():
        new = _rename(name, vae_pairs)
        if "attentions" in name:
            new = _rename(new, VAE_ATTENTION_PARTS)
            if new.endswith(".weight") and tensor.ndim == 2:  # LDM's attention uses 1x1 convolutions
                tensor = tensor[:, :, None, None]
        out[LDM_VAE_PREFIX + new] = tensor
    out.update({LDM_TEXT_PREFIX + name: tensor for name, tensor in text_encoder.state_dict().items()})
    return {name: tensor.contiguous() for name, tensor in out.items()}


def build_tiny_models(root: Path) -> Path:
    """Build sd15/, sd15.safetensors, dinov2/, depth/ and manifest.json under `root`; returns `root`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import (AutoImageProcessor, CLIPTextConfig, CLIPTextModel, DepthAnythingConfig,
                              DepthAnythingForDepthEstimation, Dinov2Config, Dinov2Model)

    from engine.models import SD15_DDIM_CONFIG

    root = Path(root)
    sd = root / "sd15"
    unet = _seeded(1, lambda: UNet2DConditionModel(**UNET_CONFIG))
    vae = _seeded(2, lambda: AutoencoderKL(**VAE_CONFIG))
    text_encoder = _seeded(3, lambda: CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)))
    dinov2 = _seeded(4, lambda: Dinov2Model(Dinov2Config(**DINOV2_CONFIG)))
    depth = _seeded(5, lambda: DepthAnythingForDepthEstimation(
        DepthAnythingConfig(backbone_config=Dinov2Config(**DEPTH_BACKBONE_CONFIG), **DEPTH_CONFIG)))

    vae_gain = calibrate_vae(vae)
    save_json(root / "depth" / "preprocessor_config.json", DEPTH_PROCESSOR)
    depth_gain = calibrate_depth(depth, AutoImageProcessor.from_pretrained(root / "depth"))

    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    text_encoder.save_pretrained(sd / "text_encoder")
    write_tokenizer(sd / "tokenizer", TEXT_CONFIG["vocab_size"])
    save_json(sd / "scheduler" / "scheduler_config.json",
               {"_class_name": "DDIMScheduler", "_diffusers_version": "0.42.1", **SD15_DDIM_CONFIG})
    save_json(sd / "model_index.json", SD15_MODEL_INDEX)
    save_file(_ldm_state_dict(unet, vae, text_encoder), root / "sd15.safetensors")
    dinov2.save_pretrained(root / "dinov2")
    save_json(root / "dinov2" / "preprocessor_config.json", DINOV2_PROCESSOR)
    depth.save_pretrained(root / "depth")
    save_json(root / "manifest.json", {"random_weights": True, "vae": vae_gain, "depth": depth_gain,
                                        "self_attention_layers": count_self_attention(unet)})
    return root


def count_self_attention(unet) -> int:
    """Self-attention modules (`attn1`) of a diffusers UNet, in execution order's count."""
    return sum(1 for name, _ in unet.named_modules() if name.endswith("attn1"))
