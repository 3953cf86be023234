"""§3.3 The VAE: one LightningModule whose variants differ only in the objective's regulariser."""
from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch

from catvae.networks import Decoder, Encoder
from catvae.objectives import Objective, bernoulli_nll, gaussian_kl


class VAE(pl.LightningModule):
    """Encoder/decoder of Tables 1–2 trained with ``objective`` (ELBO or MMD) and Adam.

    Every step logs, under ``vae/{train,val,test}/``: ``loss`` (what is minimised), ``recon``
    (−log p(x|z), nats), ``kl`` (KL(q(z|x) ‖ N(0, I)), nats), ``reg`` (the objective's penalty)
    and ``neg_elbo`` = recon + kl, so ELBO- and MMD-trained models compare on one scale.
    """

    def __init__(self, latent_dim: int, objective: Objective, hidden: Sequence[int] = (500, 500), lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.objective = objective
        self.encoder = Encoder(latent_dim, hidden)
        self.decoder = Decoder(latent_dim, hidden)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, logvar = self.encoder(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        recon = bernoulli_nll(self.decoder(z), x).mean()
        kl = gaussian_kl(mean, logvar).mean()
        reg = self.objective.regularizer(z, mean, logvar)
        return {"loss": recon + reg, "recon": recon, "kl": kl, "reg": reg, "neg_elbo": recon + kl}

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        parts = self(batch[0])
        self.log_dict(
            {f"vae/{split}/{name}": value.detach() for name, value in parts.items()},
            on_step=False, on_epoch=True, prog_bar=False, batch_size=batch[0].shape[0],
        )
        self.log(f"{split}_loss", parts["loss"].detach(), on_step=False, on_epoch=True, prog_bar=True,
                 logger=False, batch_size=batch[0].shape[0])
        return parts["loss"]

    def training_step(self, batch, batch_idx):  # noqa: D102
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):  # noqa: D102
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):  # noqa: D102
        self._step(batch, "test")

    def configure_optimizers(self):  # noqa: D102
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    @torch.no_grad()
    def encode_means(self, images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Encoder means μ(x) for N images: the deterministic code used for statistics and reconstructions."""
        return torch.cat([self.encoder(chunk)[0] for chunk in images.split(batch_size)])

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decoded encoder means: the reconstructions the classifier is trained on (§3.2)."""
        return self.decoder.images(self.encode_means(images))
