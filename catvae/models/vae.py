"""§3.3 The VAE: one LightningModule whose variants differ only in the objective's regulariser."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch

from catvae.models.epoch_means import EpochMeans
from catvae.models.networks import Decoder, Encoder
from catvae.models.objectives import Objective, bernoulli_nll, gaussian_kl
from catvae.models.optim import adam, check_schedule

TERMS = ("loss", "recon", "kl", "reg", "neg_elbo")


class VAE(pl.LightningModule):
    """Encoder/decoder of Tables 1–2 trained with ``objective`` (ELBO or MMD) and Adam.

    Every epoch logs the means, under ``vae/{train,val,test}/``, of ``loss`` (what is minimised),
    ``recon`` (−log p(x|z), nats), ``kl`` (KL(q(z|x) ‖ N(0, I)), nats), ``reg`` (the objective's
    penalty) and ``neg_elbo`` = recon + kl, so ELBO- and MMD-trained models compare on one scale.
    Steps only add to on-device sums (:mod:`catvae.models.epoch_means`).
    """

    def __init__(
        self,
        latent_dim: int,
        objective: Objective,
        hidden: Sequence[int] = (500, 500),
        lr: float = 1e-3,
        schedule: str = "constant",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.objective = objective
        self.encoder = Encoder(latent_dim, hidden)
        self.decoder = Decoder(latent_dim, hidden)
        self.lr, self.schedule = lr, check_schedule(schedule)
        self._means = {split: EpochMeans(TERMS) for split in ("train", "val", "test")}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # Under bf16 autocast the matrix products run in bf16; the loss terms are sums over 784
        # pixels and D dimensions, so they are taken in fp32.
        mean, logvar = (part.float() for part in self.encoder(x))
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = bernoulli_nll(self.decoder(z).float(), x).mean()
        kl = gaussian_kl(mean, logvar).mean()
        reg = self.objective.regularizer(z, mean, logvar)
        return {"loss": recon + reg, "recon": recon, "kl": kl, "reg": reg, "neg_elbo": recon + kl}

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        parts = self(batch[0])
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
    def encode_means(self, images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Encoder means μ(x) for N images: the deterministic code used for statistics and reconstructions."""
        return torch.cat([self.encoder(chunk)[0] for chunk in images.split(batch_size)])

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decoded encoder means: the reconstructions the classifier is trained on (§3.2)."""
        return self.decoder.images(self.encode_means(images))
