"""The z-independent half of a stage-3 step: the content's queries and the references' keys and values.

At each timestep the method runs the content's clean latent and every used reference's clean latent
through the UNet without gradient. Those tensors never depend on the optimised latent, so they are
computed in ONE batched no-grad UNet call per timestep and can be kept in a `FeatureCache`: a re-run
after a pin change (same content, same references, same timesteps) then only pays for the
forward and backward through z.

Cache keys hold everything the tensors depend on: model (and fast-mode LoRA), the latent's bytes and
shape (the working size), the timestep, the layers, the precision and the kind (queries or keys/values).
At SD1.5's 512 x 512 one image costs about 24 MB (queries) or 47 MB (keys + values) per timestep in fp32, so a 150-step run with two
references needs about 18 GB: give the cache a byte budget (memory, least recently used first out)
and optionally a folder (safetensors files, loaded back bit for bit).

A run reads its timesteps in order, the same order every re-run: plain least-recently-used eviction would
then keep only the END of a run that does not fit and throw each entry out just before the re-run needs it
(no hits at all). So every entry remembers the last run that used it, and a run never evicts its own
entries: when the budget is full of them, a new entry is simply not kept. A re-run then finds the first
budget's worth of its steps; entries of earlier runs (other photos, other references) go first, oldest first.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..types import CancelFlag, is_cancelled
from .attention import FeatureStore, capture_self_attention, forward_until_recorded

Tensors = dict[str, torch.Tensor]
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_RUN_IDS = itertools.count(1)


def autocast_for(device: torch.device, precision: str):
    """The autocast context of a precision setting ("fp32" runs without autocast)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


class FeatureCache:
    """Memory LRU (CPU tensors, a byte budget) in front of an optional folder of safetensors files.

    `run` (from `new_run()`) marks who reads and writes an entry: a run never evicts its own entries (see the
    module docstring); without it the memory part is a plain LRU.
    """

    def __init__(self, max_bytes: int = 4 << 30, directory: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._memory: OrderedDict[str, Tensors] = OrderedDict()
        self._owner: dict[str, int | None] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget the memory part (e.g. when the models change); the folder, if any, stays."""
        self._memory.clear()
        self._owner.clear()
        self._bytes = 0

    @staticmethod
    def new_run() -> int:
        return next(_RUN_IDS)

    def get(self, key: str, run: int | None = None) -> Tensors | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            self._owner[key] = run
            self.hits += 1
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            tensors = load_file(str(path))
            self._remember(key, tensors, run)
            self.hits += 1
            return tensors
        self.misses += 1
        return None

    def put(self, key: str, tensors: Tensors, run: int | None = None) -> None:
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
        self._remember(key, tensors, run)
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file(tensors, str(tmp))
            tmp.replace(path)

    def _remember(self, key: str, tensors: Tensors, run: int | None) -> None:
        size = _nbytes(tensors)
        if key in self._memory or size > self.max_bytes:
            return
        while self._bytes + size > self.max_bytes:
            victim = next((k for k in self._memory if run is None or self._owner[k] != run), None)
            if victim is None:  # the budget holds only this run's entries: keep them, not this one
                return
            self._bytes -= _nbytes(self._memory.pop(victim))
            del self._owner[victim]
        self._memory[key] = tensors
        self._owner[key] = run
        self._bytes += size

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / key[:2] / f"{key}.safetensors"


def _nbytes(tensors: Tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class StepFeatures:
    """One timestep's targets, per layer (execution order): (1, heads, tokens, head_dim) tensors."""

    content_query: dict[int, torch.Tensor]
    keys: dict[int, dict[int, torch.Tensor]]  # reference index -> layer -> K_s
    values: dict[int, dict[int, torch.Tensor]]  # reference index -> layer -> V_s


def latent_digest(latent: torch.Tensor) -> str:
    """sha256 of a latent's float32 bytes: the image identity inside feature-cache keys."""
    return hashlib.sha256(latent.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class ReferenceFeatures:
    """Computes (or fetches) the content's Q_c and the references' K_s, V_s at any timestep.

    All items missing from the cache at a timestep go through the UNet together, in batches of `batch_size`
    (0 = one batch per working size: the content and references may each have their own).
    """

    def __init__(self, unet, text_embeds: torch.Tensor, content_latent: torch.Tensor,
                 reference_latents: dict[int, torch.Tensor], layers: tuple[int, ...], precision: str,
                 model_key: str, cache: FeatureCache | None = None, batch_size: int = 0) -> None:
        self.unet = unet
        self.batch_size = batch_size
        self.text_embeds = text_embeds
        self.layers = tuple(layers)
        self.precision = precision
        self.cache = cache
        # (name, latent, kind): the content needs queries, a reference keys and values
        self._items = [("content", content_latent, "q")]
        self._refs = sorted(reference_latents)
        self._items += [(f"ref{i}", reference_latents[i], "kv") for i in self._refs]
        self._digests = {name: latent_digest(latent) for name, latent, _ in self._items}
        self._shapes = {name: list(latent.shape) for name, latent, _ in self._items}
        self._model_key = model_key
        self._run = FeatureCache.new_run()

    def at(self, timestep: float, cancel: CancelFlag | None = None) -> StepFeatures | None:
        """The features at `timestep`; None when `cancel` is set before one of its batched passes."""
        found: dict[str, Tensors] = {}
        missing = []
        for name, latent, kind in self._items:
            cached = self.cache.get(self._key(name, kind, timestep), self._run) if self.cache is not None else None
            if cached is None:
                missing.append((name, latent, kind))
            else:
                found[name] = {k: v.to(latent.device) for k, v in cached.items()}
        size = self.batch_size or max(len(missing), 1)
        by_shape: dict[tuple, list] = {}  # one batch holds latents of one working size only
        for item in missing:
            by_shape.setdefault(tuple(item[1].shape), []).append(item)
        chunks = [group[start:start + size] for group in by_shape.values() for start in range(0, len(group), size)]
        for chunk in chunks:
            if is_cancelled(cancel):
                return None
            computed = self._compute(chunk, timestep)
            for name, _, kind in chunk:
                if self.cache is not None:
                    self.cache.put(self._key(name, kind, timestep), computed[name], self._run)
            found.update(computed)
        return self._assemble(found)

    def _compute(self, items: list[tuple[str, torch.Tensor, str]], timestep: float) -> dict[str, Tensors]:
        """One batched no-grad UNet call; keep only what each item is needed for."""
        batch = torch.cat([latent for _, latent, _ in items])
        context = self.text_embeds.expand(len(items), -1, -1)
        store = FeatureStore()
        t = torch.tensor(timestep, device=batch.device)
        with torch.no_grad(), capture_self_attention(self.unet, self.layers, store, stop="qkv"), \
                autocast_for(batch.device, self.precision):
            forward_until_recorded(self.unet, batch, t, encoder_hidden_states=context, return_dict=False)
        out = {}
        for row, (name, _, kind) in enumerate(items):
            tensors = {}
            for layer in self.layers:
                rec = store[layer]
                if kind == "q":
                    tensors[f"q{layer}"] = rec.query[row:row + 1].clone()
                else:
                    tensors[f"k{layer}"] = rec.key[row:row + 1].clone()
                    tensors[f"v{layer}"] = rec.value[row:row + 1].clone()
            out[name] = tensors
        return out

    def _assemble(self, found: dict[str, Tensors]) -> StepFeatures:
        return StepFeatures(
            content_query={layer: found["content"][f"q{layer}"] for layer in self.layers},
            keys={r: {layer: found[f"ref{r}"][f"k{layer}"] for layer in self.layers} for r in self._refs},
            values={r: {layer: found[f"ref{r}"][f"v{layer}"] for layer in self.layers} for r in self._refs},
        )

    def _key(self, name: str, kind: str, timestep: float) -> str:
        blob = json.dumps({"model": self._model_key, "latent": self._digests[name], "shape": self._shapes[name],
                           "t": float(timestep),
                           "layers": list(self.layers), "precision": self.precision, "kind": kind},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()
