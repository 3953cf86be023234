"""``python -m catvae.train vae=elbo|mmd latent_dim=D ...``: the whole pipeline for one configuration.

Prints the path of the published ``summary.json`` as its last line.
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig

from catvae.config.task import hydra_command, run_main, run_task
from catvae.config.validate import validate_train

# Lightning's own use of a deprecated torch API; nothing for a user to act on.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def train(cfg: DictConfig) -> str | None:
    """Validate ``cfg``, build its settings, run the pipeline with its loggers (closed whatever happens),
    print and return the published summary's path. Under DDP (``trainer=ddp``) a process other than
    rank 0 trains alongside it, prints nothing and returns None: rank 0 publishes."""
    from catvae.config.settings import pipeline_settings
    from catvae.training.stages import run_pipeline

    def body(loggers: list) -> str | None:
        settings = pipeline_settings(cfg)
        for logger in loggers:  # a W&B run only on rank 0 (Lightning's loggers write there alone)
            logger.log_hyperparams(dict(settings.config))
        summary = run_pipeline(settings, loggers)
        return None if summary is None else str(summary)

    summary = run_task(cfg, validate_train, body)
    if summary is not None:
        print(summary)
    return summary


@hydra_command("train")
def main(cfg: DictConfig) -> str | None:
    return train(cfg)


if __name__ == "__main__":
    run_main("catvae.train")
