"""Per-method search nodes (issue 15): each option of ``conf/search`` is typed by its method's schema
(grid, Optuna, gradient), so a key of another method is refused, naming the key, the value and the
search options that take it; every search option and experiment still composes and validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from catvae.config.registry import CONF_DIR
from catvae.config.schema import GradientSearchConfig, GridSearchConfig, OptunaSearchConfig
from catvae.config.task import composition_error
from catvae.config.validate import VALIDATORS
from catvae.core.errors import ConfigError

SEARCH_OPTIONS = {
    "none": GridSearchConfig,
    "paper_grid": GridSearchConfig,
    "optuna": OptunaSearchConfig,
    "gradient": GradientSearchConfig,
}
EXPERIMENTS = sorted(path.stem for path in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
GRADIENT_KEYS = "name, weights, steps, lr, batch_per_label, theta_init, theta_high"
OPTUNA_KEYS = "name, theta_low, theta_high, theta_step, sampler_seed, storage_url, trial_samples_per_label, rescore_top, grace_s"

REFUSALS = [
    (
        ["search=paper_grid", "search.steps=5"],
        "search.steps=5 is not allowed: 'search' has no key 'steps' under search=paper_grid "
        "(steps is a key of search=gradient only); its keys are name",
    ),
    (
        ["search.theta_high=2"],  # search=none, the default
        "search.theta_high=2 is not allowed: 'search' has no key 'theta_high' under search=none "
        "(theta_high is a key of search=optuna and search=gradient only); its keys are name",
    ),
    (
        ["search=gradient", "search.rescore_top=2"],
        "search.rescore_top=2 is not allowed: 'search' has no key 'rescore_top' under search=gradient "
        f"(rescore_top is a key of search=optuna only); its keys are {GRADIENT_KEYS}",
    ),
    (
        ["search=optuna", "search.weights=[1,2]"],
        "search.weights=[1, 2] is not allowed: 'search' has no key 'weights' under search=optuna "
        f"(weights is a key of search=gradient only); its keys are {OPTUNA_KEYS}",
    ),
    (  # a key no method has: the message of before
        ["search=gradient", "search.stepz=2"],
        f"search.stepz=2 is not allowed: 'search' has no key 'stepz'; its keys are {GRADIENT_KEYS}",
    ),
]


@pytest.mark.parametrize("option", SEARCH_OPTIONS)
def test_each_search_option_is_typed_by_its_method(make_config, option):
    cfg = make_config("search_job", ["latent_dim=4", f"search={option}"])
    assert OmegaConf.get_type(cfg.search) is SEARCH_OPTIONS[option]
    VALIDATORS["search"](cfg)


def test_the_options_keep_their_values(make_config):
    assert OmegaConf.to_container(make_config("search_job", ["search=paper_grid"]).search) == {"name": "paper_grid"}
    assert OmegaConf.to_container(make_config("search_job", ["search=none"]).search) == {"name": "grid"}
    gradient = make_config("search_job", ["search=gradient"]).search
    assert (list(gradient.weights), gradient.steps, gradient.lr, gradient.theta_high) == (
        [0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
        40,
        0.05,
        3.0,
    )
    optuna = make_config("search_job", ["search=optuna"]).search
    assert (optuna.theta_step, optuna.trial_samples_per_label, optuna.rescore_top, optuna.grace_s) == (0.1, 250, 5, 3600.0)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(make_config, experiment):
    searches = experiment.endswith(("_grid", "_gradient", "_optuna"))
    cfg = make_config("search_job" if searches else "train", [f"experiment={experiment}"])
    VALIDATORS["search" if searches else "train"](cfg)
    if searches:
        method = experiment.rsplit("_", 1)[1]
        expected = {"grid": GridSearchConfig, "optuna": OptunaSearchConfig, "gradient": GradientSearchConfig}[method]
        assert OmegaConf.get_type(cfg.search) is expected


@pytest.mark.parametrize(("overrides", "message"), REFUSALS, ids=[" ".join(case[0]) for case in REFUSALS])
def test_a_key_of_another_method_is_refused_while_composing(make_config, overrides, message):
    with pytest.raises(Exception) as raised:
        make_config("search_job", overrides)
    assert str(composition_error(raised.value, overrides)) == message


# (option, key, value) of the first four refusals, for a config built in code
BUILT = [("paper_grid", "steps", 5), ("none", "theta_high", 2), ("gradient", "rescore_top", 2), ("optuna", "weights", [1, 2])]


@pytest.mark.parametrize(("built", "message"), zip(BUILT, [m for _, m in REFUSALS[:4]]), ids=[b[1] for b in BUILT])
def test_a_key_of_another_method_is_refused_by_validation(make_config, built, message):
    """A config built in code (the key added after composition, the node untyped) gets the same message."""
    option, key, value = built
    cfg = make_config("search_job", ["latent_dim=4", f"search={option}"])
    plain = {**OmegaConf.to_container(cfg.search), key: value}
    with open_dict(cfg):
        cfg.search = OmegaConf.create(plain)
    assert OmegaConf.get_type(cfg.search) is dict
    with pytest.raises(ConfigError) as raised:
        VALIDATORS["search"](cfg)
    assert str(raised.value) == message


def test_the_range_refusals_stay(make_config):
    """The messages of before for values of the method's own keys."""
    cases = [
        (["search=gradient", "search.steps=0"], "search.steps=0 is not allowed: an integer >= 1"),
        (["search=gradient", "search.theta_high=-1"], "search.theta_high=-1.0 is not allowed: a number >= 0"),
        (["search=optuna", "search.rescore_top=-1"], "search.rescore_top=-1 is not allowed: an integer >= 0"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError) as raised:
            VALIDATORS["search"](make_config("search_job", ["latent_dim=4", *overrides]))
        assert str(raised.value) == message
