"""Stage 3, the energy-guided style transfer optimisation (SPEC "Stage 3"; docs/stage3.md).

- `attention`: the attention processors that record self-attention tensors (layers 10-15).
- `features`: the z-independent queries/keys/values per timestep, batched and cached.
- `stylize`: the initial latent, the loss, the Adam loop, decode and the fast modes.
"""
