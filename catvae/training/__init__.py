"""The training pipeline's stages (train → artifacts) and the Trainer it uses."""
