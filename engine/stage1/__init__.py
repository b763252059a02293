"""Stage 1, semantic region segmentation (SPEC "Preprocessing" and "Stage 1"; docs/stage1.md).

- `inversion`: preprocessing (VAE latent), step 1 (DDIM inversion to C15), steps 2-3 (captured features, F_mix).
- `depth`: the depth map that step 7 splits on.
- `clustering`: steps 4-5 (standardise, PCA, k-means per k, silhouette).
- `regions`: steps 6-10 (merge, depth split, re-merge, user mask, clean-up) and region colours.
- `segment`: the whole stage for one image: models, progress, cancel, the disk cache.
"""
