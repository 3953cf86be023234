"""§3.3 The VAE: one LightningModule whose variants differ only in their networks and the objective's regulariser.

The networks are built from a ``_target_`` node (``vae.net``: the paper's MLPs, a small
convolutional pair, or any pair of :mod:`catvae.models.networks`' kind; conditioned on the label
they are the CVAE baseline); the objective is ELBO or MMD (:mod:`catvae.models.objectives`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from catvae.models.epoch_means import EpochMeans
from catvae.models.networks import build_networks
from catvae.models.objectives import Objective, bernoulli_nll, gaussian_kl
from catvae.models.optim import adam, check_schedule

TERMS = ("loss", "recon", "kl", "reg", "neg_elbo")


class VAE(pl.LightningModule):
    """Encoder/decoder built from ``net`` (a ``_target_`` node, :func:`~catvae.models.networks.build_networks`,
    given ``latent_dim``, ``image_shape`` and ``num_classes``: > 0 makes it conditional, the CVAE)
    trained with ``objective`` (ELBO or MMD) and Adam. Batches are (images, labels); a conditional
    pair is given the labels.

    Every epoch logs the means, under ``vae/{train,val,test}/``, of ``loss`` (what is minimised),
    ``recon`` (−log p(x|z), nats), ``kl`` (KL(q(z|x) ‖ N(0, I)), nats), ``reg`` (the objective's
    penalty) and ``neg_elbo`` = recon + kl, so ELBO- and MMD-trained models compare on one scale.
    Steps only add to on-device sums (:mod:`catvae.models.epoch_means`).
    """

    def __init__(
        self,
        latent_dim: int,
        objective: Objective,
        net: Mapping[str, Any],
        image_shape: Sequence[int],
        lr: float = 1e-3,
        schedule: str = "constant",
        num_classes: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.objective = objective
        self.encoder, self.decoder = build_networks(
            net, latent_dim=latent_dim, image_shape=list(image_shape), num_classes=num_classes
        )
        self.lr, self.schedule = lr, check_schedule(schedule)
        self._means = {split: EpochMeans(TERMS) for split in ("train", "val", "test")}

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # Under bf16 autocast the matrix products run in bf16; the loss terms are sums over the
        # pixels and D dimensions, so they are taken in fp32.
        mean, logvar = (part.float() for part in self.encoder(x, labels))
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = bernoulli_nll(self.decoder(z, labels).float(), x).mean()
        kl = gaussian_kl(mean, logvar).mean()
        reg = self.objective.regularizer(z, mean, logvar)
        return {"loss": recon + reg, "recon": recon, "kl": kl, "reg": reg, "neg_elbo": recon + kl}

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        parts = self(batch[0], batch[1])
        self._means[split].add(parts, batch[0].shape[0])
        return parts["loss"]

    def _log_epoch(self, split: str) -> None:
        self._means[split].log(self, f"vae/{split}/", progress=(f"{split}_loss", "loss"))

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        return adam(self, self.lr, self.schedule)

    @torch.no_grad()
    def encode_means(self, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 4096) -> torch.Tensor:
        """Encoder means μ(x) (μ(x, y) for a CVAE) for N images: the deterministic code used for
        statistics and reconstructions."""
        parts = labels.split(batch_size) if labels is not None else [None] * len(images.split(batch_size))
        return torch.cat([self.encoder(chunk, part)[0] for chunk, part in zip(images.split(batch_size), parts, strict=True)])

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded encoder means: the reconstructions the classifier is trained on (§3.2); a CVAE
        encodes and decodes them with their true ``labels``."""
        return self.decoder.images(self.encode_means(images, labels), labels)
