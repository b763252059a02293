"""StyleGallery engine: all computation (models, the three stages, caching). Never imports Qt."""
