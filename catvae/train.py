"""``python -m catvae.train vae=elbo|mmd latent_dim=D ...``: the whole pipeline for one configuration.

Prints the path of the published ``summary.json`` as its last line.
"""
from __future__ import annotations

import warnings

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from catvae.core.artifacts import MissingArtifactsError
from catvae.core.config import TRUSTED_TARGETS, ConfigError, exit_on_user_error
from catvae.core.errors import UserError
from catvae.data.idx import IdxFormatError


# Lightning's own use of a deprecated torch API; nothing for a user to act on.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")


@exit_on_user_error(ConfigError, MissingArtifactsError, IdxFormatError, UserError, InstantiationException)
def train(cfg: DictConfig) -> str:
    """Run the pipeline with the config's loggers, closing them whatever happens."""
    from catvae.core.loggers import build_loggers, close_loggers
    from catvae.pipeline.stages import check_train_config, run_pipeline

    check_train_config(cfg)
    loggers = build_loggers(cfg.get("logger"))
    status = "failed"
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        summary = run_pipeline(cfg, loggers)
        status = "success"
    finally:
        close_loggers(loggers, status)
    print(summary)
    return str(summary)


@hydra.main(config_path="conf", config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
