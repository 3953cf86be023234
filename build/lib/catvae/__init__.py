"""catvae: categorical generation of images from a VAE's latent space (train, search, generate, report)."""

__version__ = "0.1.0"
