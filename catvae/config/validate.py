"""One check per command of its composed config, before anything is loaded, trained or written.

The schema (:mod:`catvae.config.schema`) has already fixed the types while Hydra composed; this
module checks what types cannot say: ranges (``latent_dim >= 1``, learning rates > 0, dropout in
[0, 1)), rules between keys (θ's shape for the chosen generator, ``latent_dim`` and the dataset's
classes), the machine (a GPU only where there is one) and keys a ``+key=`` override added that no
schema or class knows. Every refusal is a :class:`~catvae.core.errors.ConfigError` naming the key,
the value and what is allowed. Library classes check their own arguments with plain
``ValueError``s; the config keys are named here and only here.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from catvae.config.schema import (
    SEARCH_SCHEMAS,
    GenerateSchema,
    GradientSearchConfig,
    JudgeSchema,
    OptunaSearchConfig,
    SearchSchema,
    TrainSchema,
    allowed_for,
    search_options_taking,
)
from catvae.core.errors import ArgumentError, ConfigError
from catvae.data.checks import VAL_SIZE_ALLOWED, val_size_allowed
from catvae.training.distributed import BATCH_KEYS


def validate_train(cfg: DictConfig) -> None:
    """``python -m catvae.train``: the whole pipeline's config."""
    check_schema(cfg, TrainSchema)
    check_key(cfg)
    check_data(cfg)
    check_vae(cfg)
    check_classifier(cfg)
    check_judge(cfg)
    check_trainer(cfg, tuple(BATCH_KEYS.values()))
    check_generator(cfg)
    check_from_search(cfg, training=True)
    check_eval(cfg)
    check_latent(cfg)
    check_densities(cfg)
    at_least(cfg, "eval.grid_per_label", 1)


def validate_search(cfg: DictConfig) -> None:
    """``python -m catvae.search``: one job scoring a generator on trained artifacts."""
    check_trained_generator(cfg, SearchSchema)
    check_judge(cfg)
    check_eval(cfg)
    check_search(cfg)


def validate_judge(cfg: DictConfig) -> None:
    """``python -m catvae.judge``: the independent judge's training on a dataset's real images."""
    check_schema(cfg, JudgeSchema)
    at_least(cfg, "seed", 0)
    check_data(cfg)
    check_judge(cfg)
    check_trainer(cfg, (BATCH_KEYS["judge"],))
    check_precision(cfg)


def validate_generate(cfg: DictConfig) -> None:
    """``python -m catvae.generate``: images of a class from trained artifacts."""
    check_trained_generator(cfg, GenerateSchema)
    check_label(cfg.label, int(cfg.data.num_classes), cfg.data.get("class_names"))
    at_least(cfg, "num", 1)
    at_least(cfg, "sample_seed", 0)
    for key, suffix in (("out", ".npz"), ("png", ".png")):
        value = cfg.get(key)
        if value is not None and Path(str(value)).suffix != suffix:
            raise ConfigError(key, value, f"null or a file name ending in {suffix}")


VALIDATORS = {"train": validate_train, "search": validate_search, "generate": validate_generate, "judge": validate_judge}


# ---------------------------------------------------------------- the pieces ------------------------------------


def at_least(cfg: DictConfig, key: str, minimum: int) -> int:
    """The integer at ``key``, refused below ``minimum``."""
    return integer_at_least(key, OmegaConf.select(cfg, key), minimum)


def integer_at_least(key: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum`` (for config keys and command-line options alike)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, value, f"an integer >= {minimum}")
    return value


def number(
    cfg: DictConfig, key: str, low: float, *, above: bool = False, below: float | None = None, optional: bool = False
) -> float | None:
    """The finite number at ``key``: ``>= low`` (``> low`` with ``above``), and ``< below`` if given;
    ``optional`` also accepts null."""
    value = OmegaConf.select(cfg, key)
    if value is None and optional:
        return None
    allowed = f"a number {'>' if above else '>='} {low:g}" + (f" and < {below:g}" if below is not None else "")
    if optional:
        allowed = f"null or {allowed}"
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value > low if above else value >= low)
        and (below is None or value < below)
    )
    if not ok:
        raise ConfigError(key, value, allowed)
    return float(value)


def check_schema(cfg: DictConfig, schema: type) -> None:
    """The config fits ``schema`` and every value is set: composition typed every override, but a
    ``+key=value`` override can still add a key that nothing reads (``+vae.lrr=1``)."""
    given = OmegaConf.to_container(cfg, resolve=False)  # unresolved: ${hydra:…} may not be set yet
    assert isinstance(given, dict)
    given.pop("hydra", None)  # Hydra's own node, typed by Hydra
    missing = missing_keys(given)
    if missing:
        raise ConfigError(missing[0], "???", f"a value: it has no default (set {missing[0]}=…)")
    try:
        OmegaConf.merge(structured(schema), given)
    except OmegaConfBaseException as error:
        raise schema_error(error, OmegaConf.select(cfg, str(error.full_key), default=None)) from None


@functools.cache
def structured(schema: type) -> DictConfig:
    """The schema as an OmegaConf node, built once per process (~6 ms; a search job validates each time)."""
    return OmegaConf.structured(schema)


def missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Keys whose value is ``???`` in a plain container."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found = []
    for key, value in items:
        name = f"{prefix}{key}"
        found += [name] if value == "???" else missing_keys(value, f"{name}.")
    return found


# Top-level nodes that a config group other than the primary config's adds, and which one.
ADDED_BY = {"cluster": "only hydra/launcher=slurm adds it: conf/cluster/slurm.yaml"}


def schema_error(error: OmegaConfBaseException, value: Any) -> ConfigError:
    """An OmegaConf type or key error as a ConfigError (``value``: what the user gave, when the error lacks it)."""
    key = str(error.full_key)
    if isinstance(error, (ConfigKeyError, ConfigAttributeError)):
        parent, _, name = key.rpartition(".")
        known = list(error.parent_node.keys()) if isinstance(error.parent_node, DictConfig) else []
        where = f"'{parent}'" if parent else "the config"
        keys = f"; its keys are {', '.join(map(str, known))}" if known else ""
        added = f" ({ADDED_BY[key]})" if key in ADDED_BY else ""
        if parent == "search" and not added:
            added = other_search_method(error.parent_node, name)
        return ConfigError(key, value, f"{where} has no key '{name}'{added}{keys}")
    return ConfigError(key, error.value if error.value is not None else value, allowed_for(error))


def other_search_method(search: Any, name: str) -> str:
    """For a key ``name`` the search option ``search`` (its node) has not: the options that take it,
    in words (`` under search=paper_grid (steps is a key of search=gradient only)``), or "" when none does."""
    takers = search_options_taking(name)
    if not takers or not isinstance(search, DictConfig):
        return ""
    options = next((opts for schema, _, opts in SEARCH_SCHEMAS.values() if OmegaConf.get_type(search) is schema), ())
    chosen = str(search.get("name"))
    option = chosen if chosen in options else (options[0] if options else chosen)
    return f" under search={option} ({name} is a key of {' and '.join(f'search={taker}' for taker in takers)} only)"


def check_key(cfg: DictConfig) -> None:
    """``latent_dim`` and ``seed``: with ``data`` and ``vae`` they name the artifacts."""
    at_least(cfg, "latent_dim", 1)
    at_least(cfg, "seed", 0)


def check_device(cfg: DictConfig, key: str) -> None:
    """``device=`` / ``trainer.accelerator=``: a known choice, and a GPU only where there is one."""
    from catvae.core.device import resolve_device

    resolve_device(str(OmegaConf.select(cfg, key)), key)


def check_data(cfg: DictConfig) -> None:
    """Batch sizes, class count and the data module's arguments (the data's own checks come when it loads)."""
    for key in ("data.batch_size", "data.eval_batch_size"):
        at_least(cfg, key, 1)
    at_least(cfg, "data.num_classes", 2)
    for key in ("data.limit_train", "data.limit_test"):
        if OmegaConf.select(cfg, key) is not None:
            at_least(cfg, key, 1)
    if not val_size_allowed(cfg.data.val_size):  # how many images it leaves is checked when the data loads
        raise ConfigError("data.val_size", cfg.data.val_size, VAL_SIZE_ALLOWED)
    if "root" in cfg.data.source and cfg.data.get("root") is None:
        raise ConfigError("data.root", None, "a folder of IDX files (data=idx reads its images from data.root=DIR)")
    names = cfg.data.get("class_names")
    if names is not None:
        num_classes = int(cfg.data.num_classes)
        if len(names) != num_classes or len(set(names)) != len(names) or not all(str(name).strip() for name in names):
            raise ConfigError(
                "data.class_names", list(names), f"null or a list of {num_classes} distinct, non-empty names (data.num_classes)"
            )
    check_arguments(cfg.data, "data")
    check_arguments(cfg.data.source, "data.source")


def check_vae(cfg: DictConfig) -> None:
    """Epochs, learning rate, the networks ``vae.net`` (built dry, on the meta device, for the data's
    ``data.image_shape`` when the data config declares it: the networks' own refusals, named
    ``vae.net.<argument>``) and the objective's arguments (MMD: weight >= 0, scale > 0 or null)."""
    at_least(cfg, "vae.epochs", 1)
    number(cfg, "vae.lr", 0, above=True)
    check_networks(cfg)
    objective = cfg.vae.objective
    check_arguments(objective, "vae.objective")
    if "weight" in objective:
        number(cfg, "vae.objective.weight", 0)
    if "scale" in objective:
        number(cfg, "vae.objective.scale", 0, above=True, optional=True)


def check_table3(cfg: DictConfig, group: str) -> None:
    """Epochs, batch size, learning rate, dropout probabilities and arguments of a Table-3 CNN's
    training recipe at ``group`` (``classifier``, or ``judge``)."""
    at_least(cfg, f"{group}.epochs", 1)
    at_least(cfg, f"{group}.batch_size", 1)
    number(cfg, f"{group}.model.lr", 0, above=True)
    for key in (f"{group}.model.dropout_conv", f"{group}.model.dropout_fc"):
        number(cfg, key, 0, below=1)
    at_least(cfg, f"{group}.model.num_classes", 2)
    check_arguments(cfg[group].model, f"{group}.model")


def check_classifier(cfg: DictConfig) -> None:
    """Table 3's classifier, trained on the VAE's reconstructions."""
    check_table3(cfg, "classifier")


def check_judge(cfg: DictConfig) -> None:
    """The judge's seed and its Table-3 recipe (also CAS's)."""
    at_least(cfg, "judge.seed", 0)
    check_table3(cfg, "judge")


def check_trainer(cfg: DictConfig, batch_keys: Sequence[str] = ()) -> None:
    """The accelerator exists here, every ``trainer.*`` key is an argument of the Trainer, and the
    processes it asks for can be had (:func:`check_distributed`, which checks ``batch_keys``)."""
    if "accelerator" in cfg.trainer:
        check_device(cfg, "trainer.accelerator")
    check_arguments(cfg.trainer, "trainer")
    check_distributed(cfg, batch_keys)


def check_distributed(cfg: DictConfig, batch_keys: Sequence[str]) -> None:
    """``trainer.strategy``, ``trainer.devices`` and ``trainer.num_nodes`` (``trainer=ddp``,
    :mod:`catvae.training.distributed`): a strategy the pipeline runs under, whole numbers of
    processes, no more GPUs than this machine has, several nodes only where srun or torchrun started
    the processes, one training per command, and batch sizes (``batch_keys``: they are global)
    that split evenly across the processes."""
    from catvae.training.distributed import STRATEGIES

    strategy = cfg.trainer.get("strategy", "auto")
    if strategy not in STRATEGIES:
        raise ConfigError(
            "trainer.strategy",
            strategy,
            f"one of {', '.join(STRATEGIES)} (trainer=ddp: Lightning's DDP, one process per device, started by its "
            "launcher, srun or torchrun)",
        )
    devices = cfg.trainer.get("devices", 1)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ConfigError("trainer.devices", devices, "an integer >= 1: the training processes on each node (one per GPU)")
    nodes = cfg.trainer.get("num_nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigError("trainer.num_nodes", nodes, "an integer >= 1: the machines that train together")
    check_gpu_count(cfg, devices)
    world = devices * nodes
    if world == 1:
        return
    if nodes > 1 and not launched_per_process():
        raise ConfigError(
            "trainer.num_nodes",
            nodes,
            "1 in a process started by hand: training on several nodes needs one process per device on every node, "
            "started by srun (SLURM: srun --nodes=N --ntasks-per-node=DEVICES) or torchrun (--nnodes=N "
            "--nproc-per-node=DEVICES); see the README's multi-process training",
        )
    if multirun():
        raise ConfigError(
            "trainer.devices",
            devices,
            f"1 in a multirun (-m): {world} processes train one configuration per command (every process would "
            "run the whole sweep); run each configuration as its own command",
        )
    for key in batch_keys:
        batch = OmegaConf.select(cfg, key)
        if isinstance(batch, int) and batch % world:
            lower = batch - batch % world
            raise ConfigError(
                key,
                batch,
                f"a multiple of {world}, the training processes (trainer.devices × trainer.num_nodes): batch sizes are "
                f"global and each process takes an equal share of every batch (e.g. {key}={lower or world})",
            )


def check_gpu_count(cfg: DictConfig, devices: int) -> None:
    """No more ``trainer.devices`` than this machine's GPUs when training on GPUs."""
    import torch

    from catvae.core.device import resolve_device

    if resolve_device(str(cfg.trainer.get("accelerator", "auto"))).type != "cuda":
        return
    available = torch.cuda.device_count()
    if devices > available:
        raise ConfigError("trainer.devices", devices, f"at most {available}: this machine has {available} CUDA GPU(s)")


def launched_per_process() -> bool:
    """Whether a cluster launcher started this process as one of many: srun (SLURM) or torchrun.
    Both say each process's rank before it starts, which the pipeline needs before its first
    Trainer (:mod:`catvae.training.distributed`)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def multirun() -> bool:
    """Whether this process runs a Hydra multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_precision(cfg: DictConfig) -> None:
    """``eval.precision``: how the classifiers score (catvae.evaluation.evaluator.EVAL_PRECISIONS)."""
    from catvae.evaluation.evaluator import EVAL_PRECISIONS

    if str(cfg.eval.precision) not in EVAL_PRECISIONS:
        raise ConfigError("eval.precision", cfg.eval.precision, f"one of {', '.join(EVAL_PRECISIONS)}")


def check_eval(cfg: DictConfig) -> None:
    """Samples per label (pairs are needed), the evaluation seed and the classifier's precision."""
    samples = OmegaConf.select(cfg, "eval.samples_per_label")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError("eval.samples_per_label", samples, "an integer >= 2 (pairs are needed)")
    at_least(cfg, "eval.seed", 0)
    check_precision(cfg)
    check_sample_metrics(cfg)


def check_sample_metrics(cfg: DictConfig) -> None:
    """``eval.sample_metrics``: a list of distinct groups of :data:`catvae.evaluation.sample_metrics.METRIC_GROUPS`."""
    from catvae.evaluation.sample_metrics import METRIC_GROUPS

    groups = OmegaConf.select(cfg, "eval.sample_metrics")
    if groups is None:
        return
    values = [value for value in groups if not isinstance(value, DictConfig)]
    if any(value not in METRIC_GROUPS for value in values) or len(set(values)) != len(values):
        raise ConfigError(
            "eval.sample_metrics",
            OmegaConf.to_container(groups),
            f"a list of distinct names among {', '.join(METRIC_GROUPS)} (or [])",
        )
    for index, node in enumerate(groups):  # a metric group of one's own: a trusted _target_ node
        if isinstance(node, DictConfig):
            if target(node) is None:
                from catvae.config.registry import TRUSTED_TARGETS

                allowed = f"a target in the trusted packages ({', '.join(TRUSTED_TARGETS)}; extra_trusted_targets adds yours)"
                raise ConfigError(f"eval.sample_metrics.{index}._target_", node.get("_target_"), allowed)
            check_arguments(node, f"eval.sample_metrics.{index}")


def check_densities(cfg: DictConfig) -> None:
    """``densities`` (train): class density nodes, each under its own name, each built dry
    (:func:`check_density`), ``diag`` among them (stats.pt, the paper's generator) and ``latent``'s."""
    names = [str(name) for name in cfg.densities]
    if "diag" not in names:
        allowed = "class density nodes with diag among them (stats.pt, the paper's density: +latent@densities.diag=diag)"
        raise ConfigError("densities", names, allowed)
    for name in names:
        node = cfg.densities[name]
        if not isinstance(node, DictConfig) or node.get("name") != name:
            value = node.get("name") if isinstance(node, DictConfig) else node
            raise ConfigError(f"densities.{name}.name", value, f"{name!r}: a class density's name is its key in densities")
        check_density(node, f"densities.{name}")
    latent = cfg.latent.get("name")
    if latent not in names:
        allowed = f"one of the densities train fits ({', '.join(names)}); fit one more with +latent@densities.{latent}={latent}"
        raise ConfigError("latent", latent, allowed)
    for option, value in latent_options_overridden():
        allowed = f"set densities.{latent}.{option} instead: train fits the nodes of densities (latent picks one)"
        raise ConfigError(f"latent.{option}", value, allowed)


def latent_options_overridden() -> list[tuple[str, str]]:
    """The ``latent.OPTION=VALUE`` overrides of this command line (``+``/``++`` included; none outside
    a Hydra run). Train fits ``densities.NAME`` (``latent`` only names the one it evaluates), so such an
    option would be silently ignored there."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    found = []
    for override in HydraConfig.get().overrides.task:
        key, _, value = str(override).lstrip("+~").partition("=")
        if key.startswith("latent."):
            found.append((key.removeprefix("latent."), value))
    return found


def check_latent(cfg: DictConfig) -> None:
    """``latent``: the class density drawn from, a named node that builds (:func:`check_density`)."""
    name = cfg.latent.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError("latent.name", name, "a name (diag, full, gmm, kde, prior or one of your own conf/latent files)")
    check_density(cfg.latent, "latent")


def check_density(node: DictConfig, key: str) -> None:
    """A class density node at ``key`` built dry (its class's constructor, which checks its fit options):
    a key its class takes no argument for, an argument the class refuses (an
    :class:`~catvae.core.errors.ArgumentError`, named below ``key``), another ``ValueError`` of
    the class's, or a ``_target_`` that cannot be built here, each a :class:`ConfigError`."""
    from hydra.errors import InstantiationException

    from catvae.config.registry import TRUSTED_TARGETS_ENV, trusted_targets
    from catvae.densities.base import build_density

    check_arguments(node, key, ignore=("name",))
    try:
        build_density(node, str(node.get("name")))
    except ArgumentError as error:
        raise ConfigError(f"{key}.{error.argument}", error.value, error.allowed) from None
    except ConfigError:
        raise
    except InstantiationException as error:
        reason = str(error.__cause__ or error).strip().splitlines()[0]
        allowed = (
            f"an importable class density of a trusted package ({', '.join(trusted_targets())}; "
            f"trust your own with {TRUSTED_TARGETS_ENV}=yourpackage.*): {reason}"
        )
        raise ConfigError(f"{key}._target_", node.get("_target_"), allowed) from None
    except (ValueError, TypeError) as error:
        raise ConfigError(key, OmegaConf.to_container(node, resolve=True), str(error)) from None


def check_search(cfg: DictConfig) -> None:
    """By the search's method (its schema, :data:`catvae.config.schema.SEARCH_SCHEMAS`): a grid has
    nothing to check; Optuna its space (θ from ``theta_low`` to ``theta_high`` in steps), cheap trials
    and re-scoring; gradient its front and optimiser."""
    method = search_method(cfg.search)
    given = OmegaConf.to_container(cfg.search, resolve=False)
    try:  # composition typed it by its option's schema; a config built otherwise is checked here
        OmegaConf.merge({"search": structured(method)}, {"search": given})
    except OmegaConfBaseException as error:
        raise schema_error(error, OmegaConf.select(cfg, str(error.full_key), default=None)) from None
    if method is GradientSearchConfig:
        number(cfg, "search.theta_high", 0)
        check_gradient_search(cfg)
    elif method is OptunaSearchConfig:
        check_optuna_search(cfg)


def search_method(search: DictConfig) -> type:
    """The schema of ``search``'s method: its own type where composition gave it one, else the one
    its ``name`` names (``grid`` and ``paper_grid``: a grid)."""
    typed = OmegaConf.get_type(search)
    schemas = [schema for schema, _, _ in SEARCH_SCHEMAS.values()]
    if typed in schemas:
        return typed
    name = str(search.get("name"))
    return SEARCH_SCHEMAS.get("grid" if name == "paper_grid" else name, SEARCH_SCHEMAS["grid"])[0]


def check_optuna_search(cfg: DictConfig) -> None:
    """``search=optuna``: the space (θ from ``theta_low`` to ``theta_high`` in steps), cheap trials and re-scoring."""
    search = cfg.search
    samples = search.get("trial_samples_per_label")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 2):
        raise ConfigError("search.trial_samples_per_label", samples, "null or an integer >= 2 (pairs are needed)")
    at_least(cfg, "search.rescore_top", 0)
    number(cfg, "search.grace_s", 0)
    number(cfg, "search.theta_low", 0)
    number(cfg, "search.theta_high", 0)
    if search.theta_high < search.theta_low:
        raise ConfigError("search.theta_high", search.theta_high, f"a number >= search.theta_low ({search.theta_low:g})")
    number(cfg, "search.theta_step", 0, above=True, optional=True)
    if search.get("sampler_seed") is not None:
        at_least(cfg, "search.sampler_seed", 0)


def check_gradient_search(cfg: DictConfig) -> None:
    """``search=gradient``: one run (not a multirun), a non-empty list of weights >= 0, an optimiser that can move."""
    if multirun():
        raise ConfigError("search", "gradient", "a single run: search=gradient fits its whole front in one run (drop -m)")
    weights = cfg.search.get("weights")
    if not weights or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < math.inf for w in weights):
        raise ConfigError("search.weights", weights, "a non-empty list of numbers >= 0 (the cosine term's weights)")
    at_least(cfg, "search.steps", 1)
    number(cfg, "search.lr", 0, above=True)
    at_least(cfg, "search.batch_per_label", 2)
    number(cfg, "search.theta_init", 0)
    number(cfg, "search.theta_high", 0, above=True)


def check_against_artifacts(cfg: DictConfig, stats: Any) -> None:
    """After loading trained statistics: θ's shape and ``label`` against the classes they hold
    (``data.num_classes`` said what to expect; the artifacts have the last word)."""
    check_generator(cfg, stats.num_classes)
    if "label" in cfg:
        check_label(cfg.label, stats.num_classes, cfg.data.get("class_names"))


def check_generator(cfg: DictConfig, num_classes: int | None = None) -> None:
    """The generator's own arguments, checked by building it dry (its class owns n >= 1, fill >= 0
    and θ's entries >= 0), and θ in the shape the generator takes for these artifacts (Simple: a
    number; Medium-1: ``latent_dim`` entries; Medium-2: classes × ``latent_dim``, the classes
    ``data.num_classes`` unless given)."""
    from catvae.generators.gaussian import ThetaError, build_generator, check_theta

    node = cfg.generator
    check_arguments(node, "generator", ignore=("from_search",))
    dry = OmegaConf.to_container(node, resolve=True)
    assert isinstance(dry, dict)
    dry["from_search"] = None  # resolved later from its record (check_from_search); the values here are built
    built_dry(lambda: build_generator(dry), "generator", passing=(ThetaError,))  # θ: worded with its shape below
    generator = target(node)
    if generator is None or not hasattr(generator, "theta_shape_for"):
        return
    latent_dim = int(cfg.latent_dim)
    num_classes = int(cfg.data.num_classes) if num_classes is None else num_classes
    shape = generator.theta_shape_for(num_classes, latent_dim)
    params = OmegaConf.to_container(node, resolve=True)
    assert isinstance(params, dict)
    try:
        check_theta(params["theta"], shape)
    except ThetaError as error:
        key = ".".join(["generator.theta", *map(str, error.path)])
        sizes = f"latent_dim={latent_dim}" + (f", {num_classes} classes" if len(shape) == 2 else "")
        raise ConfigError(key, error.value, f"{error.allowed} ({generator.name}, {sizes})") from None


def built_dry(build: Any, key: str, passing: tuple[type[BaseException], ...] = ()) -> Any:
    """``build()`` (a config node instantiated as its command will), so that its class checks its own
    arguments: its :class:`ArgumentError` becomes the :class:`ConfigError` of ``key.<argument>``
    (``n=0`` → ``generator.n=0 is not allowed: an integer >= 1``). Errors of ``passing`` types are
    left for the caller to word; None is returned then."""
    from hydra.errors import InstantiationException

    try:
        return build()
    except Exception as error:
        cause: BaseException = error
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__  # Hydra wraps the target's own error
        if isinstance(cause, ArgumentError):
            raise ConfigError(f"{key}.{cause.argument}", cause.value, cause.allowed) from None
        if isinstance(cause, passing):
            return None
        raise


def check_trained_generator(cfg: DictConfig, schema: type) -> None:
    """What search and generate share: a generator drawn on the trained artifacts of a key, on ``device``."""
    check_schema(cfg, schema)
    check_key(cfg)
    check_device(cfg, "device")
    check_generator(cfg)
    check_from_search(cfg, training=False)
    check_latent(cfg)


def check_from_search(cfg: DictConfig, training: bool) -> None:
    """``generator.from_search``: null, or ``best`` where trained models exist (search, generate).

    Training refuses ``best`` before anything trains: a search record belongs to the models it
    scored (:mod:`catvae.sweep.records`), and the models this run trains do not exist yet.
    """
    source = cfg.generator.get("from_search")
    if source is None:
        return
    if training:
        raise ConfigError(
            "generator.from_search",
            source,
            "null in training: a search record belongs to the models it scored, and this run trains "
            "new ones. Train, then search (python -m catvae.search -m …), then use the best with "
            "python -m catvae.generate … generator.from_search=best",
        )
    if source != "best":
        raise ConfigError("generator.from_search", source, "null or best")


def check_label(label: Any, num_classes: int, names: Sequence[str] | None = None) -> list[int]:
    """``label``: ``all``, a class of the dataset, or one of its ``names`` (``data.class_names``,
    e.g. ``label=Sneaker``); the labels it stands for."""
    if label == "all":
        return list(range(num_classes))
    named = [str(name) for name in names or ()]
    if isinstance(label, str) and label in named and named.index(label) < num_classes:
        return [named.index(label)]
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
        # Names that are the label numbers themselves (MNIST's "0".."9") add nothing to say.
        extra = [name for index, name in enumerate(named) if name != str(index)]
        allowed = f'"all" or an integer label from 0 to {num_classes - 1}'
        raise ConfigError("label", label, allowed + (f" or a class name ({', '.join(extra)})" if extra else ""))
    return [label]


def target(node: DictConfig) -> Any:
    """The class or function a ``_target_`` node names, when it is one of the trusted targets (None otherwise:
    instantiating it refuses it)."""
    from hydra.utils import get_object

    from catvae.config.registry import trusted_targets

    path = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(path, str) or not any(fnmatch.fnmatchcase(path, pattern) for pattern in trusted_targets()):
        return None
    try:
        return get_object(path)
    except Exception:
        raise ConfigError(f"{node._get_full_key(None) or 'node'}._target_", path, "an importable class or function") from None


def check_networks(cfg: DictConfig) -> None:
    """``vae.net`` names trusted networks taking its keys, and they build for the data's image shape."""
    import torch

    from catvae.models.networks import build_networks

    net = cfg.vae.net
    path = net.get("_target_") if isinstance(net, DictConfig) else None
    if not isinstance(path, str):
        raise ConfigError("vae.net", net, "a _target_ node naming the networks (conf/vae/net: mlp, conv)")
    if target(net) is None:
        from catvae.config.registry import TRUSTED_TARGETS

        allowed = f"a target in the trusted packages ({', '.join(TRUSTED_TARGETS)}; extra_trusted_targets adds yours)"
        raise ConfigError("vae.net._target_", path, allowed)
    check_arguments(net, "vae.net", ignore=("latent_dim", "image_shape", "num_classes"))
    shape = cfg.data.get("image_shape")
    if shape is None:
        return  # the source's shape is known once it loads: the networks refuse then
    try:
        with torch.device("meta"):
            build_networks(
                OmegaConf.to_container(net, resolve=True),  # type: ignore[arg-type]
                latent_dim=int(cfg.latent_dim),
                image_shape=list(shape),
                num_classes=int(cfg.data.num_classes) if cfg.vae.conditional else 0,
            )
    except ConfigError as error:
        key = error.key if error.key == "image_shape" else f"vae.net.{error.key}"
        raise ConfigError("data.image_shape" if key == "image_shape" else key, error.value, error.allowed) from None


def check_arguments(node: DictConfig, key: str, ignore: tuple[str, ...] = ()) -> None:
    """Every key of a ``_target_`` node is an argument of what it names (``+vae.objective.weight=1``
    on ELBO, ``+trainer.max_epoch=3``), refused before it would fail mid-run."""
    built = target(node)
    if built is None:
        return
    try:
        parameters = inspect.signature(built).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    names = [name for name in parameters if name != "self"]
    for name in node:
        if isinstance(name, str) and not name.startswith("_") and name not in ignore and name not in parameters:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f": {', '.join(names) or 'it takes none'}"
            raise ConfigError(f"{key}.{name}", node[name], f"an argument of {node._target_}{hint}")
