"""§3.4 The classifier that scores generated images, trained on a VAE's reconstructions."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from catvae.models.epoch_means import EpochMeans
from catvae.models.networks import ClassifierNet
from catvae.models.optim import adam, check_schedule


class Classifier(pl.LightningModule):
    """Table 3's CNN (its layers sized for ``image_shape``, the data module's) with cross entropy and
    Adam; logs ``{log_prefix}/{split}/{loss,acc}`` once an epoch.

    Training steps only add to on-device sums (:mod:`catvae.models.epoch_means`); validation runs few,
    large batches, where torchmetrics' per-batch cost does not matter. Test accuracies are
    ``ClassifierNet.accuracy`` on the trained network (``catvae.training.stages.train_classifier``).
    """

    def __init__(
        self,
        num_classes: int = 10,
        lr: float = 1e-3,
        dropout_conv: float = 0.25,
        dropout_fc: float = 0.5,
        schedule: str = "constant",
        log_prefix: str = "classifier",
        image_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        if image_shape is None:  # data.image_shape, or given by the training stage from its data module
            raise ValueError("Classifier needs image_shape=(channels, height, width) of the images it classifies")
        # Plain ints before they are saved: a ListConfig (Hydra's instantiate passes one) would make
        # the resume checkpoint unreadable with torch.load(weights_only=True).
        image_shape = [int(side) for side in image_shape]
        self.save_hyperparameters()
        self.net = ClassifierNet(num_classes, dropout_conv, dropout_fc, image_shape=image_shape)
        self.lr, self.schedule = lr, check_schedule(schedule)
        self.prefix = log_prefix  # "judge" for the independent judge (catvae.training.judge)
        # torch's Module.to stub lacks the memory_format keyword that Module.to accepts at run time.
        self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # see ClassifierNet.forward
        self.train_means = EpochMeans(("loss", "acc"))
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).float()
        loss = F.cross_entropy(logits, y)
        self.train_means.add({"loss": loss, "acc": (logits.argmax(dim=1) == y).float().mean()}, len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.train_means.log(self, f"{self.prefix}/train/", progress=("train_acc", "acc"))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).float()
        self.val_acc(logits, y)
        # sync_dist: under DDP the epoch's loss is the mean over every process's share of the split
        # (Lightning adds up the weighted sums and batch sizes once, at the epoch's end); the
        # accuracy metric gathers its counts itself.
        self.log(f"{self.prefix}/val/loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True)
        self.log(f"{self.prefix}/val/acc", self.val_acc, on_epoch=True, prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        return adam(self, self.lr, self.schedule)
