"""Typed configs and validate, in-process: what composes (sweeps, Optuna's overrides, experiments),
and each refusal's exact words (the same words the commands print after ``error: ``)."""

import re
from pathlib import Path
from typing import get_args

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from catvae.config.experiments import paper_experiments
from catvae.config.registry import CONF_DIR, instantiate
from catvae.config.schema import Cos, Schedule
from catvae.config.settings import theta_space
from catvae.config.task import composition_error
from catvae.config.validate import VALIDATORS, check_against_artifacts
from catvae.core.errors import ConfigError
from catvae.densities.diag import ClassLatentStats
from catvae.evaluation.metrics import COS_CHOICES
from catvae.generators.gaussian import Medium2, build_generator, theta_tensor
from catvae.models.optim import SCHEDULES

COMMANDS = {"train": "train", "search_job": "search", "generate": "generate"}


def refusal(make_config, name: str, overrides: list[str]) -> str:
    """The message a command prints for ``overrides``: composition's, else validate's."""
    try:
        cfg = make_config(name, overrides)
    except Exception as error:
        worded = composition_error(error, overrides)
        assert worded is not None, repr(error)
        return str(worded)
    with pytest.raises(ConfigError) as caught:
        VALIDATORS[COMMANDS[name]](cfg)
    return str(caught.value)


@pytest.mark.parametrize("name", COMMANDS)
def test_the_default_configs_validate(make_config, name):
    VALIDATORS[COMMANDS[name]](make_config(name))


def test_validate_resolves_nothing_it_need_not():
    """A multirun's shared config is validated before Hydra sets ``${hydra:runtime.output_dir}``."""
    with initialize_config_dir(config_dir=CONF_DIR):
        for name in COMMANDS:
            VALIDATORS[COMMANDS[name]](compose(name, []))


def test_schema_choices_are_the_libraries():
    assert get_args(Schedule) == SCHEDULES and get_args(Cos) == COS_CHOICES


TRAIN_REFUSALS = [
    (["latent_dim=2.5"], "latent_dim=2.5 is not allowed: an integer"),
    (["latent_dim=null"], "latent_dim=None is not allowed: an integer"),
    (["seed=-1"], "seed=-1 is not allowed: an integer >= 0"),
    (["vae.lr=abc"], "vae.lr='abc' is not allowed: a number"),
    (["vae.lr=1e-3", "classifier.model.lr=-0.5"], "classifier.model.lr=-0.5 is not allowed: a number > 0"),
    (["vae.net.hidden=[500,a]"], "vae.net.hidden.1='a' is not allowed: an integer >= 1"),
    (["vae.net.hidden=[500,0]"], "vae.net.hidden.1=0 is not allowed: an integer >= 1"),
    (["vae=elbo_conv", "vae.net.kernel=5"], "vae.net.kernel=5 is not allowed: 3 or 4 (stride-2 convolutions with padding 1)"),
    (
        ["vae=mmd_conv", "vae.net.channels=[8,8,8]"],
        "vae.net.channels=[8, 8, 8] is not allowed: a list of 1 or 2 channel counts "
        "(each stride-2 convolution halves the side: 28 → 14 → 7)",
    ),
    (
        ["vae=mmd_conv", "data.image_shape=[1,30,30]"],
        "vae.net.channels=[32, 64] is not allowed: at most as many stride-2 convolutions as halve 30×30 exactly "
        "(the image's sides must divide by 4)",
    ),
    (["vae=elbo_conv", "vae.net.channels=[8,0]"], "vae.net.channels.1=0 is not allowed: an integer >= 1"),
    (["vae/net=rnn"], "vae/net='rnn' is not allowed: one of conv, mlp"),
    (
        ["vae.net._target_=mylab.rnn_networks"],
        "vae.net._target_='mylab.rnn_networks' is not allowed: a target in the trusted packages (catvae.*, ",
    ),
    (["+vae.net.depth=3"], "vae.net.depth=3 is not allowed: an argument of catvae.models.networks.mlp_networks"),
    (["vae=cvae", "vae.conditional=maybe"], "vae.conditional='maybe' is not allowed: true or false"),
    (["data.limit_train=0"], "data.limit_train=0 is not allowed: an integer >= 1"),
    (["data.limit_train=abc"], "data.limit_train='abc' is not allowed: an integer or null"),
    (["data.eval_batch_size=0"], "data.eval_batch_size=0 is not allowed: an integer >= 1"),
    (["data.num_classes=1"], "data.num_classes=1 is not allowed: an integer >= 2"),
    (["classifier.epochs=0"], "classifier.epochs=0 is not allowed: an integer >= 1"),
    (["classifier.batch_size=0"], "classifier.batch_size=0 is not allowed: an integer >= 1"),
    (["classifier.model.dropout_fc=1"], "classifier.model.dropout_fc=1.0 is not allowed: a number >= 0 and < 1"),
    (["classifier.model.dropout_conv=-0.1"], "classifier.model.dropout_conv=-0.1 is not allowed: a number >= 0 and < 1"),
    (["classifier.model.schedule=step"], "classifier.model.schedule='step' is not allowed: one of constant, onecycle"),
    (["objective.cos=l2"], "objective.cos='l2' is not allowed: one of pairwise, to_mean"),
    (["eval.grid_per_label=0"], "eval.grid_per_label=0 is not allowed: an integer >= 1"),
    (["eval.seed=-3"], "eval.seed=-3 is not allowed: an integer >= 0"),
    (["vae=mmd", "vae.objective.scale=0"], "vae.objective.scale=0 is not allowed: null or a number > 0"),
    (["vae=mmd", "vae.objective.weight=abc"], "vae.objective.weight='abc' is not allowed: a number >= 0"),
    (
        ["+vae.objective.weight=3"],
        "vae.objective.weight=3 is not allowed: an argument of catvae.models.objectives.ELBO: it takes none",
    ),
    (
        ["+trainer.max_epoch=3"],
        "trainer.max_epoch=3 is not allowed: an argument of pytorch_lightning.Trainer (did you mean max_epochs?)",
    ),
    (["+latent_dimm=3"], "latent_dimm=3 is not allowed: the config has no key 'latent_dimm'"),
    (["+data.bach_size=3"], "data.bach_size=3 is not allowed: 'data' has no key 'bach_size'"),
    (["data=idx"], "data.root=None is not allowed: a folder of IDX files (data=idx reads its images from data.root=DIR)"),
    (
        ["experiment=paper_elbo2"],
        "experiment='paper_elbo2' is not allowed: one of fashion_cvae20_prior_simple_grid, "
        "fashion_mmd20_diag_medium2_gradient, fashion_mmd20_diag_simple_grid",  # … every file of conf/experiment/
    ),
    (["generator.theta=[0.5]"], "generator.theta=[0.5] is not allowed: a number >= 0 (simple, latent_dim=4)"),
    (["generator.theta=nan"], "generator.theta=nan is not allowed: a number >= 0 (simple, latent_dim=4)"),
    (["generator.fill=-1"], "generator.fill=-1.0 is not allowed: a number >= 0"),
    (["generator.n=1.5"], "generator.n=1.5 is not allowed: an integer"),
    (
        ["generator=medium1", "+generator.theta.4=0.2"],
        "generator.theta.4=0.2 is not allowed: an index from 0 to 3 (medium1, latent_dim=4)",
    ),
    (
        ["generator=medium1", "+generator.theta.x=0.2"],
        "generator.theta.x=0.2 is not allowed: an index from 0 to 3 (medium1, latent_dim=4)",
    ),
    (
        ["generator=medium2", "+generator.theta.7.1=-0.2"],
        "generator.theta.7.1=-0.2 is not allowed: a number >= 0 (medium2, latent_dim=4, 10 classes)",
    ),
    (
        [
            "generator=medium2",
            "generator.theta=[[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0,0],[0,0,0]]",
        ],
        "generator.theta.9=[0, 0, 0] is not allowed: a number or a list of 4 numbers >= 0 (medium2, latent_dim=4, 10 classes)",
    ),
    (["+latent_dim=3"], "Could not append to config. An item is already at 'latent_dim'."),
]


@pytest.mark.parametrize(("overrides", "message"), TRAIN_REFUSALS, ids=[" ".join(case[0]) for case in TRAIN_REFUSALS])
def test_train_refusals(make_config, tiny, overrides, message):
    assert refusal(make_config, "train", [*tiny, *overrides]).startswith(message)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("generate", ["label=all", "num=0"], "num=0 is not allowed: an integer >= 1"),
        ("generate", ["label=true"], 'label=True is not allowed: "all" or an integer label from 0 to 9'),
        ("generate", ["sample_seed=-1"], "sample_seed=-1 is not allowed: an integer >= 0"),
        ("generate", ["out=/tmp/images"], "out='/tmp/images' is not allowed: null or a file name ending in .npz"),
        ("search_job", ["search=optuna", "search.theta_high=-1"], "search.theta_high=-1.0 is not allowed: a number >= 0"),
        (
            "search_job",
            ["search=optuna", "search.theta_low=0.5", "search.theta_high=0.2"],
            "search.theta_high=0.2 is not allowed: a number >= search.theta_low (0.5)",
        ),
        ("search_job", ["search=optuna", "search.sampler_seed=-1"], "search.sampler_seed=-1 is not allowed: an integer >= 0"),
        ("search_job", ["device=tpu"], "device='tpu' is not allowed: one of auto, cpu, gpu, cuda"),
        ("search_job", ["+eval.grid_per_label=3"], "eval.grid_per_label=3 is not allowed: 'eval' has no key 'grid_per_label'"),
    ],
)
def test_search_and_generate_refusals(make_config, name, overrides, message):
    assert refusal(make_config, name, overrides).startswith(message)


def test_label_and_theta_are_checked_against_the_artifacts_classes(make_config):
    """``data.num_classes`` says what to expect; statistics with other classes have the last word."""
    stats = ClassLatentStats(
        mean=__import__("torch").zeros(3, 4), std=__import__("torch").ones(3, 4), count=__import__("torch").full((3,), 5)
    )
    with pytest.raises(ConfigError, match='label=7 is not allowed: "all" or an integer label from 0 to 2'):
        check_against_artifacts(make_config("generate", ["latent_dim=4", "label=7"]), stats)
    cfg = make_config("generate", ["latent_dim=4", "generator=medium2", "+generator.theta.5.0=0.1"])
    VALIDATORS["generate"](cfg)  # 10 classes configured: row 5 exists
    refused = r"generator.theta.5=.* is not allowed: an index from 0 to 2 \(medium2, latent_dim=4, 3 classes\)"
    with pytest.raises(ConfigError, match=refused):
        check_against_artifacts(cfg, stats)


@pytest.mark.parametrize("generator", ["medium1", "medium2"])
def test_optuna_overrides_compose_validate_and_build(make_config, generator):
    """Every override name the Optuna search space suggests (``+generator.theta.y.d=…``) composes
    into the typed config, validates, and builds θ of the generator's shape."""
    base = ["latent_dim=3", f"generator={generator}", "search=optuna"]
    space = theta_space(make_config("search_job", base))
    names = space.names
    assert len(names) == (3 if generator == "medium1" else 30)
    assert (space.low, space.high, space.step) == (0.0, 1.0, 0.1)  # conf/search/optuna.yaml: the paper's range
    cfg = make_config("search_job", [*base, *(f"{name}={0.1 * (i % 7)}" for i, name in enumerate(names))])
    VALIDATORS["search"](cfg)
    built = build_generator(cfg.generator)
    shape = (3,) if generator == "medium1" else (10, 3)
    theta = theta_tensor(built.theta, shape, built.fill).flatten().tolist()
    assert theta == pytest.approx([0.1 * (i % 7) for i in range(len(names))])


def test_sweeper_params_and_experiments_compose():
    with initialize_config_dir(config_dir=CONF_DIR):
        optuna = compose("search_job", ["search=optuna"], return_hydra_config=True)
        grid = compose("search_job", ["search=paper_grid"], return_hydra_config=True)
        assert optuna.hydra.sweeper.params["generator.n"] == "choice(1, 2, 3, 5)"
        assert optuna.hydra.sweeper.custom_search_space == "catvae.config.sweeper.search_space"
        assert grid.hydra.sweeper.params["generator.theta"].startswith("0.0,0.1,0.2")
        assert list(grid.hydra.callbacks) == ["threads", "validate", "sweep_summary"]
        with pytest.raises(ConfigCompositionException):
            compose("search_job", ["search=optuna", "hydra.sweeper.n_trials=abc"], return_hydra_config=True)


@pytest.mark.parametrize("experiment", [e.name for e in paper_experiments()])
def test_every_paper_experiment_composes_and_validates(make_config, experiment):
    command = next(e for e in paper_experiments() if e.name == experiment).command
    name = "train" if command == "catvae.train" else "search_job"
    cfg = make_config(name, [f"experiment={experiment}"])
    VALIDATORS[COMMANDS[name]](cfg)
    assert cfg.latent_dim == int(re.match(r"paper_[a-z]+(\d+)", experiment).group(1))


def test_open_nodes_stay_open_and_interpolations_resolve(make_config):
    cfg = make_config("train", ["+trainer.gradient_clip_val=0.5", "seed=3", "data=idx", "data.root=/data/fashion"])
    VALIDATORS["train"](cfg)
    assert cfg.trainer.precision in ("32-true", "bf16-mixed")  # ${catvae.precision:${.accelerator}}
    assert (cfg.data.seed, cfg.data.name, cfg.data.source.root) == (3, "idx-fashion", "/data/fashion")
    assert instantiate(cfg.trainer, enable_progress_bar=False, callbacks=[]).gradient_clip_val == 0.5
    assert build_generator(make_config("search_job", ["generator=medium2"]).generator).__class__ is Medium2


def test_a_refused_key_is_named_as_the_user_typed_it():
    """An unknown key's value comes from the command line (composition does not carry it)."""
    with initialize_config_dir(config_dir=CONF_DIR), pytest.raises(ConfigCompositionException) as caught:
        compose("train", ["vae.lrr=[1,2]"])
    worded = str(composition_error(caught.value, ["vae.lrr=[1,2]"]))
    assert worded.startswith("vae.lrr=[1, 2] is not allowed: 'vae' has no key 'lrr'")
    assert Path(CONF_DIR, "train.yaml").read_text().count("catvae_train_schema") == 1
