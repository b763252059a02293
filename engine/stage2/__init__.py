"""Stage 2, clustered region matching (SPEC "Stage 2"; docs/stage2.md).

- `dinov2_tokens`: the DINOv2 patch tokens of an image (S_sem's input), cached.
- `matching`: S_stat, S_sem, S_pos, the best (reference, region) per content region.
- `pins`: the artist's pins over the matches (the method's and the instant draft's: one rule, no torch).
"""
