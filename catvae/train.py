"""``python -m catvae.train vae=elbo|mmd latent_dim=D ...``: the whole pipeline for one configuration.

Prints the path of the published ``summary.json`` as its last line.
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig, OmegaConf

from catvae.core.task import hydra_command, run_main, run_task
from catvae.core.validate import validate_train

# Lightning's own use of a deprecated torch API; nothing for a user to act on.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def train(cfg: DictConfig) -> str:
    """Validate ``cfg``, run the pipeline with its loggers (closed whatever happens), print and
    return the published summary's path."""
    from catvae.pipeline.stages import run_pipeline

    def body(loggers: list) -> str:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        return str(run_pipeline(cfg, loggers))

    summary = run_task(cfg, validate_train, body)
    print(summary)
    return summary


@hydra_command("train")
def main(cfg: DictConfig) -> str:
    return train(cfg)


if __name__ == "__main__":
    run_main("catvae.train")
