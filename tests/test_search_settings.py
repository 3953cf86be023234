"""The search layer's typed settings (issue 15), built once from the composed config by
catvae.config.settings: each field read back against the config, each search method's own
settings, the request a job records (as main's catvae recorded it, so a re-run still finds its
finished jobs), and the sweeper's search-space hook reading the config and calling catvae.sweep."""

from __future__ import annotations

import os

import optuna
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from catvae.artifacts import ArtifactKey
from catvae.config.settings import search_job, sweep_summary_settings, theta_space
from catvae.config.sweeper import search_space, study_trial
from catvae.sweep import trials
from catvae.sweep.jobs import job_request
from catvae.sweep.settings import GradientSettings, GridSearch, OptunaSearch, StudyTrial

MEDIUM1 = {"_target_": "catvae.generators.gaussian.Medium1", "theta": None, "fill": 1.0, "n": 1, "from_search": None}
WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # conf/search/gradient.yaml
OPTUNA = ["latent_dim=4", "seed=7", "generator=medium1", "search=optuna", "device=cpu", "eval.precision=32"]


def test_a_search_job_holds_what_its_config_says(make_config, tmp_path):
    job = search_job(make_config("search_job", [*OPTUNA, "objective.cos=to_mean", "latent=gmm"]))
    assert job.models.key == ArtifactKey("mnist", "elbo", 4, 7)
    assert (job.models.device, job.models.bf16, job.models.judge_seed) == (torch.device("cpu"), False, 0)
    assert job.models.artifacts_dir == str(tmp_path / "logs" / "artifacts") and job.models.data["name"] == "mnist"
    assert job.generator == MEDIUM1
    assert job.latent == "gmm" and job.method == OptunaSearch("optuna", 0.0, 1.0, 0.1, 250, 5)
    assert (job.evaluation.samples_per_label, job.evaluation.cos, job.trial_samples_per_label) == (1000, "to_mean", 250)
    assert job.records_dir == str(tmp_path / "logs" / "search" / "best") and job.output_dir == str(tmp_path / "logs" / "run")
    assert job.objective_config == {"cos": "to_mean", "classifier": "paper"}
    assert job.eval_config["sample_metrics"] == ["fid", "novelty"]
    assert job.wandb and job.trial is None  # logger=wandb by default; no Optuna sweep runs here
    recorded = job.provenance()
    assert (recorded["seed"], recorded["device"], recorded["config"]["latent"]["name"]) == (7, "cpu", "gmm")


def test_the_request_a_job_records_is_the_one_main_recorded(make_config):
    """``result.json``'s ``request``, which a re-run of a killed sweep compares: exactly as main's
    ``job_request(cfg, trial_samples(cfg))`` wrote it for this config (no models trained: ``models`` null)."""
    request = job_request(search_job(make_config("search_job", [*OPTUNA, "objective.cos=to_mean"])))
    assert request == {
        "key": {"data": "mnist", "vae": "elbo", "latent_dim": 4, "seed": 7},
        "models": None,
        "generator": MEDIUM1,
        "latent": "diag",
        "eval": {
            "samples_per_label": 250,
            "seed": 1234,
            "precision": "32",
            "cos": "to_mean",
            "classifier": "paper",
            "sample_metrics": ["fid", "novelty"],
            "judge_seed": 0,
        },
        "device": "cpu",
    }
    own = "{_target_:mylab.metrics.Sharpness,k:3}"
    request = job_request(search_job(make_config("search_job", [*OPTUNA, f"eval.sample_metrics=[prdc,{own}]"])))
    assert request["eval"]["sample_metrics"] == ["prdc", "{'_target_': 'mylab.metrics.Sharpness', 'k': 3}"]


@pytest.mark.parametrize(
    ("overrides", "method"),
    [
        (["search=none"], GridSearch("grid")),
        (["search=paper_grid"], GridSearch("paper_grid")),
        (
            ["search=optuna", "search.theta_step=null", "search.trial_samples_per_label=null"],
            OptunaSearch("optuna", 0.0, 1.0, None, None, 5),
        ),
        (["search=gradient"], GradientSettings(WEIGHTS, 40, 0.05, 32, 1.0, 3.0, False)),
        (
            ["search=gradient", "eval.precision=bf16", "search.steps=3"],
            GradientSettings(WEIGHTS, 3, bf16=True),
        ),
    ],
)
def test_each_search_method_keeps_its_own_settings(make_config, overrides, method):
    job = search_job(make_config("search_job", ["latent_dim=4", "device=cpu", "eval.precision=32", *overrides]))
    assert job.method == method
    assert job.trial_samples_per_label == 1000  # only Optuna's cheap trials score on fewer


def test_cheap_trials_are_never_larger_than_the_evaluation(make_config):
    job = search_job(make_config("search_job", [*OPTUNA, "eval.samples_per_label=100", "search.trial_samples_per_label=400"]))
    assert job.trial_samples_per_label == 100


@pytest.mark.parametrize(
    ("overrides", "rescore_top"),
    [
        (["search=optuna"], 5),  # 250 samples per trial, 1000 for the best: the five best are re-scored
        (["search=optuna", "search.rescore_top=2"], 2),
        (["search=optuna", "search.trial_samples_per_label=null"], 0),  # trials scored in full: nothing to re-score
        (["search=optuna", "eval.samples_per_label=200"], 0),  # 250 per trial is more than the 200 of the evaluation
        (["search=paper_grid"], 0),
    ],
)
def test_a_sweep_summary_rescores_only_cheap_trials(make_config, tmp_path, overrides, rescore_top):
    settings = sweep_summary_settings(make_config("search_job", ["latent_dim=4", "logger=none", *overrides]))
    assert settings.rescore_top == rescore_top
    assert (settings.log_dir, settings.wandb, settings.latent) == (str(tmp_path / "logs"), False, "diag")
    assert settings.records_dir == str(tmp_path / "logs" / "search" / "best") and settings.models.key.latent_dim == 4


def test_the_search_space_hook_records_the_trial_and_suggests_theta(make_config, tmp_path):
    """``custom_search_space`` (conf/search/optuna.yaml): the trial's owner and job folder recorded,
    one parameter per entry of θ on ``search.theta_low``..``theta_high`` in ``theta_step``."""
    cfg = make_config("search_job", ["latent_dim=3", "generator=medium1", "search=optuna", "search.theta_high=0.5"])
    with open_dict(cfg):
        cfg.hydra = {"sweep": {"dir": str(tmp_path / "sweep")}}
    assert theta_space(cfg).names == ("+generator.theta.0", "+generator.theta.1", "+generator.theta.2")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials.forget_asked_trials()
    try:
        for _ in range(2):
            trial = study.ask()
            search_space(cfg, trial)
        assert trials.job_trial_number(1, "", None, None, "") == trial.number  # the second job scores the second trial
    finally:
        trials.forget_asked_trials()
    assert trial.user_attrs[trials.JOB_DIR] == str(tmp_path / "sweep" / "1")
    assert trial.user_attrs[trials.OWNER]["pid"] == os.getpid()
    assert set(trial.params) == {"+generator.theta.0", "+generator.theta.1", "+generator.theta.2"}
    assert all(0.0 <= value <= 0.5 and value * 10 == pytest.approx(round(value * 10)) for value in trial.params.values())


def test_a_job_outside_an_optuna_sweep_scores_no_trial():
    trials.forget_asked_trials()
    assert trials.job_trial_number(0, "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", None, None, "/x") is None
    assert trials.job_trial_number(0, "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", None, "s", "/x") is None


def test_a_job_finds_its_trial_in_hydra_config(tmp_path):
    """:func:`catvae.config.sweeper.study_trial`: in a worker process (no trials asked there) the job's
    trial is the RUNNING one recorded with its folder; where this process asked the trials, the one of
    its job number; a single run (``hydra.job.num`` missing) or another sweeper scores none."""
    from hydra.core.hydra_config import HydraConfig

    url, sweep = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "sweep"
    study = optuna.create_study(study_name="s", storage=url)
    asked = [study.ask() for _ in range(3)]
    for job, trial in enumerate(asked):
        trial.set_user_attr(trials.JOB_DIR, str(sweep / str(job)))
    sweeper = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "storage": url, "study_name": "s"}

    def job_config(num: object, sweeper: dict) -> None:
        hydra = {"job": {"num": num}, "sweeper": sweeper, "runtime": {"output_dir": str(sweep / "1")}}
        HydraConfig.instance().cfg = OmegaConf.create({"hydra": hydra})

    trials.forget_asked_trials()
    job_config("???", sweeper)  # a single run's job number is missing: the folder decides
    assert study_trial() == StudyTrial(asked[1].number, url, "s")
    job_config(1, {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"})
    assert study_trial() is None
    try:
        for trial in asked:
            trials.claim_trial(trial, str(sweep))
        job_config(2, sweeper)
        assert study_trial() == StudyTrial(asked[2].number, url, "s")
    finally:
        trials.forget_asked_trials()
