"""``python -m catvae.judge data=… [seed=…]``: train the independent judge of a dataset (issue 8).

Table 3's classifier trained on the dataset's *real* training images, scored on its real test
images, and the reference scores of real test images (:mod:`catvae.training.judge`). Published in
``logs/artifacts/<data>/judge/seed<seed>/`` (``judge.pt``, ``summary.json``) and used by every VAE
of the dataset (``judge.seed`` in train and search). Prints the path of its ``summary.json`` last.
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig

from catvae.config.task import hydra_command, run_main, run_task
from catvae.config.validate import validate_judge

warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def judge(cfg: DictConfig) -> str | None:
    """Validate ``cfg``, train and publish the judge with its loggers, print and return its summary's
    path (under DDP, on rank 0; the other processes train alongside and return None)."""
    from catvae.config.settings import judge_settings, resolved_config, run_config
    from catvae.core.loggers import log_summary
    from catvae.training.judge import train_judge

    def body(loggers: list) -> str | None:
        import json

        for logger in loggers:
            logger.log_hyperparams(resolved_config(cfg))
        path = train_judge(judge_settings(cfg), run_config(cfg), loggers)
        if path is None:
            return None
        summary = json.loads(path.read_text())
        log_summary(loggers, {k: summary[k] for k in ("accuracy", "reference", "timing_s")})
        return str(path)

    summary = run_task(cfg, validate_judge, body)
    if summary is not None:
        print(summary)
    return summary


@hydra_command("judge")
def main(cfg: DictConfig) -> str | None:
    return judge(cfg)


if __name__ == "__main__":
    run_main("catvae.judge")
