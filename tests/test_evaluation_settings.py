"""One evaluator: the scoring settings read once from the config (EvaluationSettings) and scored through."""

from __future__ import annotations

import pytest
import torch

from catvae.config.settings import evaluation_settings
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation.evaluator import EvaluationSettings, evaluate_generator
from catvae.generators.gaussian import Simple


def test_settings_read_train_configs_eval_objective_and_the_judges_recipe(make_config):
    settings = evaluation_settings(make_config("train"))
    # conf/train.yaml's eval and objective; CAS's recipe is conf/judge/table3.yaml's.
    assert settings == EvaluationSettings(
        samples_per_label=1000,
        seed=1234,
        cos="pairwise",
        precision="auto",
        sample_metric_groups=("fid", "prdc", "novelty"),
        objective_classifier="paper",
        cas={"epochs": 5, "batch_size": 128, "lr": 3.0e-3},
    )
    overridden = evaluation_settings(
        make_config("train", ["eval.cas=false", "eval.samples_per_label=7", "objective.cos=to_mean", "eval.sample_metrics=[]"])
    )
    assert overridden.cas is None and overridden.samples_per_label == 7
    assert overridden.cos == "to_mean" and overridden.sample_metric_groups == ()


class ToyDecoder:
    """A linear map from 2-d codes to 4 'pixels' (a conditional decoder would use the labels)."""

    def images(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(torch.cat([codes, -codes], dim=1))


class ToyClassifier:
    """Class 1 where the first pixel is brighter than its mirror, else 0."""

    def predict(self, images: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        return (images[:, 0] > images[:, 2]).long()


@pytest.mark.parametrize("cos", ["pairwise", "to_mean"])
def test_score_is_evaluate_generator_with_those_settings(cos):
    stats = ClassLatentStats(
        mean=torch.tensor([[-2.0, 0.5], [2.0, -0.5]]), std=torch.tensor([[0.5, 1.0], [0.5, 1.0]]), count=torch.tensor([10, 10])
    )
    settings = EvaluationSettings(samples_per_label=50, seed=7, cos=cos, precision="32")
    scored = settings.score(Simple(0.8, 1), stats, ToyDecoder(), ToyClassifier())
    direct = evaluate_generator(Simple(0.8, 1), stats, ToyDecoder(), ToyClassifier(), 50, 7, cos, False)
    assert scored == direct
    # The toy classifier is right wherever a code keeps its class mean's sign: the means are 4 σ from 0.
    assert scored["accuracy"] == pytest.approx(1.0, abs=0.02)
    assert scored["objective"] == pytest.approx(scored[f"cos_{cos}"] + 1 - scored["accuracy"])
    # A trial's settings differ only where replaced.
    assert settings.replace(samples_per_label=5) == EvaluationSettings(samples_per_label=5, seed=7, cos=cos, precision="32")
