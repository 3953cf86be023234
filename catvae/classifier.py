"""§3.4 The classifier that scores generated images, trained on a VAE's reconstructions."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from catvae.epoch_means import EpochMeans
from catvae.networks import ClassifierNet


class Classifier(pl.LightningModule):
    """Table 3's CNN with cross entropy and Adam; logs ``classifier/{split}/{loss,acc}`` once an epoch.

    Training steps only add to on-device sums (:mod:`catvae.epoch_means`); validation and test
    run few, large batches, where torchmetrics' per-batch cost does not matter.

    The test loop takes several dataloaders (reconstructed test set, real test images); their
    names, in order, are given as ``test_names`` so each gets its own accuracy.
    """

    def __init__(self, num_classes: int = 10, lr: float = 1e-3, dropout_conv: float = 0.25,
                 dropout_fc: float = 0.5, test_names: tuple[str, ...] = ("test",)):
        super().__init__()
        self.save_hyperparameters()
        self.net = ClassifierNet(num_classes, dropout_conv, dropout_fc)
        self.lr = lr
        self.test_names = tuple(test_names)
        self.net.to(memory_format=torch.channels_last)  # see ClassifierNet.forward
        self.train_means = EpochMeans(("loss", "acc"))
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = torch.nn.ModuleList(MulticlassAccuracy(num_classes, average="micro") for _ in self.test_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):  # noqa: D102
        x, y = batch
        logits = self(x).float()
        loss = F.cross_entropy(logits, y)
        self.train_means.add({"loss": loss, "acc": (logits.argmax(dim=1) == y).float().mean()}, len(y))
        return loss

    def on_train_epoch_end(self) -> None:  # noqa: D102
        means = self.train_means.pop()
        if means:
            self.log_dict({f"classifier/train/{name}": value for name, value in means.items()})
            self.log("train_acc", means["acc"], prog_bar=True, logger=False)

    def validation_step(self, batch, batch_idx):  # noqa: D102
        x, y = batch
        logits = self(x).float()
        self.val_acc(logits, y)
        self.log("classifier/val/loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y))
        self.log("classifier/val/acc", self.val_acc, on_epoch=True, prog_bar=True, batch_size=len(y))

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):  # noqa: D102
        x, y = batch
        metric = self.test_acc[dataloader_idx]
        metric(self(x), y)
        self.log(f"classifier/{self.test_names[dataloader_idx]}/acc", metric, on_epoch=True,
                 batch_size=len(y), add_dataloader_idx=False)

    def configure_optimizers(self):  # noqa: D102
        return torch.optim.Adam(self.parameters(), lr=self.lr)
