"""Typed schemas of the three primary configs, registered in Hydra's ConfigStore.

Each primary YAML (``conf/train.yaml``, ``search_job.yaml``, ``generate.yaml``) lists its schema
first in its defaults, so Hydra merges every group file and every override into these dataclasses
while it composes: ``latent_dim=abc``, ``vae.epochs=1.5``, ``vae.schedule=cosine`` or ``vae.lrr=1``
are refused before any code of ours runs (:mod:`catvae.config.task` words the refusal). Types and
closed choices only; ranges and rules between keys (``latent_dim >= 1``, θ's shape for the
generator, a GPU only where there is one) are :mod:`catvae.config.validate`'s.

Values come from the YAML files, not from here: a field is ``MISSING`` unless some group option
leaves the key out (then its default is what the code assumes without it). Nodes whose keys are
really open stay untyped: ``_target_`` nodes whose arguments depend on the class (the VAE
objective, the data source, the Lightning Trainer, the class densities), the loggers, and θ, which is a number, a list
or a mapping (``+generator.theta.3=0.2``). validate checks their argument names against the
classes they name.

A key a YAML file of ``conf/`` adds must be declared here (or sit under an open node); composition
names the key that is not.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional

from omegaconf import MISSING, DictConfig, ListConfig

Schedule = Literal["constant", "onecycle"]  # catvae.models.optim.SCHEDULES
Cos = Literal["pairwise", "to_mean"]  # catvae.evaluation.metrics.COS_CHOICES
ObjectiveClassifier = Literal["paper", "judge"]  # catvae.evaluation.evaluator.OBJECTIVE_CLASSIFIERS

# Names in Hydra's ConfigStore that the primary YAML files list first in their defaults.
TRAIN_SCHEMA, SEARCH_SCHEMA, GENERATE_SCHEMA = "catvae_train_schema", "catvae_search_schema", "catvae_generate_schema"
JUDGE_SCHEMA = "catvae_judge_schema"
CLUSTER_SCHEMA = "catvae_cluster_schema"  # in the group cluster


@dataclass
class DataConfig:
    """``conf/data``: the data module's constructor arguments; ``source`` is a ``_target_`` node."""

    _target_: str = MISSING
    name: str = MISSING
    source: Any = MISSING
    num_classes: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    val_size: Any = MISSING
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    seed: int = MISSING
    root: Optional[str] = None  # data=idx: the folder of IDX files
    # (channels, height, width) of the images; null: whatever the source's are (checked when they load)
    image_shape: Optional[List[int]] = None
    class_names: Optional[List[str]] = None  # one per class, for plots, grids and generate's label; null: the numbers


@dataclass
class VaeConfig:
    """``conf/vae``: the VAE stage; ``objective`` is a ``_target_`` node whose arguments depend on the class.

    The networks: ``net``, a ``_target_`` node (``conf/vae/net``: mlp, Tables 1–2; conv, strided
    convolutions) whose target returns (encoder, decoder) given ``latent_dim``, the data's
    ``image_shape`` and ``num_classes`` (:func:`catvae.models.networks.build_networks`; its
    arguments are checked by building it, :func:`catvae.config.validate.check_vae`);
    ``conditional`` appends the one-hot label to both networks' inputs (CVAE)."""

    name: str = MISSING
    epochs: int = MISSING
    lr: float = MISSING
    schedule: Schedule = MISSING
    net: Dict[str, Any] = MISSING
    objective: Dict[str, Any] = MISSING
    conditional: bool = False


@dataclass
class ClassifierModelConfig:
    """``classifier.model``: the classifier's constructor arguments."""

    _target_: str = MISSING
    num_classes: int = MISSING
    lr: float = MISSING
    schedule: Schedule = MISSING
    dropout_conv: float = MISSING
    dropout_fc: float = MISSING
    log_prefix: str = "classifier"  # the name its curves are logged under (the judge's: judge)
    image_shape: Optional[List[int]] = None  # (channels, height, width): data.image_shape, or the loaded data's


@dataclass
class ClassifierConfig:
    """``conf/classifier``: the classifier stage."""

    epochs: int = MISSING
    batch_size: int = MISSING
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)


@dataclass
class JudgeConfig:
    """``conf/judge``: the independent judge (trained on real images) and which one scores."""

    seed: int = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)


@dataclass
class GeneratorConfig:
    """``conf/generator``: θ is a number, a list or a mapping, so it stays untyped (checked by validate)."""

    _target_: str = MISSING
    theta: Any = None
    n: int = MISSING
    fill: float = 1.0  # the generators' own default; simple.yaml does not set it
    from_search: Optional[str] = None


@dataclass
class PathsConfig:
    """``conf/paths``: where runs and artifacts live."""

    log_dir: str = MISSING
    artifacts_dir: str = MISSING
    output_dir: Optional[str] = MISSING  # ${hydra:runtime.output_dir}: unset in a multirun's shared config
    checkpoints_dir: str = MISSING  # train's resumable Lightning checkpoints (catvae.training.resume)
    search_records_dir: str = MISSING  # search's best configurations (catvae.sweep.records)


@dataclass
class EvalConfig:
    """``eval``: how a generator is scored (eq. 4–5)."""

    samples_per_label: int = MISSING
    seed: int = MISSING
    precision: str = "auto"  # auto, 32 or bf16 (validate)
    # any of fid, prdc, novelty, or a _target_ node of your own metric group (validate; catvae.evaluation.sample_metrics)
    sample_metrics: List[Any] = MISSING
    cas: bool = MISSING  # Classification Accuracy Score (train's summary, a sweep's re-scored best)


@dataclass
class TrainEvalConfig(EvalConfig):
    grid_per_label: int = MISSING


@dataclass
class JudgeEvalConfig:
    precision: str = "auto"


@dataclass
class ObjectiveConfig:
    cos: Cos = MISSING
    classifier: ObjectiveClassifier = MISSING


@dataclass
class RunConfig:
    """``run``: how loggers name a run."""

    kind: str = MISSING
    group: str = MISSING
    name: str = MISSING


@dataclass
class GridSearchConfig:
    """``conf/search/none.yaml``, ``paper_grid.yaml``: a grid through Hydra's basic sweeper (or one
    job), named; it takes no other key."""

    name: str = MISSING


@dataclass
class OptunaSearchConfig:
    """``conf/search/optuna.yaml``: Optuna's space for θ, its storage, and cheap trials re-scored."""

    name: str = MISSING
    theta_low: float = 0.0
    theta_high: float = 1.0
    theta_step: Optional[float] = None
    sampler_seed: Optional[int] = None
    storage_url: Optional[str] = None
    trial_samples_per_label: Optional[int] = None
    rescore_top: int = 0
    grace_s: float = 3600.0  # when a silent process on another host counts as gone (catvae.sweep.trials, .study)


@dataclass
class GradientSearchConfig:
    """``conf/search/gradient.yaml`` (catvae.sweep.gradient): the front's weights and each point's optimiser."""

    name: str = MISSING
    weights: Optional[List[float]] = None
    steps: int = 40
    lr: float = 0.05
    batch_per_label: int = 32
    theta_init: float = 1.0
    theta_high: float = 1.0


# Each option of ``conf/search`` lists its method's schema first in its defaults (stored in the group
# under these names), so a key of another method (``search=paper_grid search.steps=5``) is refused
# while Hydra composes. By method: the schema, its name in the ConfigStore, the group's options.
SEARCH_SCHEMAS: dict[str, tuple[type, str, tuple[str, ...]]] = {
    "grid": (GridSearchConfig, "catvae_grid_schema", ("none", "paper_grid")),
    "optuna": (OptunaSearchConfig, "catvae_optuna_schema", ("optuna",)),
    "gradient": (GradientSearchConfig, "catvae_gradient_schema", ("gradient",)),
}


def search_options_taking(key: str) -> list[str]:
    """The options of ``conf/search`` whose method has the key ``key`` (``steps`` → ``["gradient"]``)."""
    return [
        option
        for schema, _, options in SEARCH_SCHEMAS.values()
        if key in {f.name for f in dataclasses.fields(schema)}
        for option in options
    ]


@dataclass
class ClusterConfig:
    """``conf/cluster``: each job's resources on a cluster, read by the launcher config that submits
    it. ``hydra/launcher=slurm`` adds this node to the config (it is absent otherwise, so it is not a
    field of the primary schemas: Hydra merges the launcher's defaults before them); the group's
    files list this schema first (:data:`CLUSTER_SCHEMA`)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_job: Optional[int] = MISSING  # null: no GPU
    cpus_per_task: int = MISSING
    mem_gb: int = MISSING
    time_min: int = MISSING


@dataclass
class TrainSchema:
    """``conf/train.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    # conf/latent: class density nodes (_target_, its fit options, name), open: the class checks its own
    # options (validate builds each node dry). `latent` is the one evaluated; train fits every `densities` node.
    latent: Dict[str, Any] = field(default_factory=dict)
    densities: Dict[str, Any] = field(default_factory=dict)
    # Lightning Trainer arguments, open to any of them (+trainer.gradient_clip_val=1); validate
    # checks the names against the Trainer's signature and the accelerator against this machine.
    trainer: Dict[str, Any] = field(default_factory=dict)
    logger: Dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    latent_dim: int = MISSING
    seed: int = MISSING
    eval: TrainEvalConfig = field(default_factory=TrainEvalConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    run: RunConfig = field(default_factory=RunConfig)
    resume: bool = True  # continue a killed training from its last checkpoint
    # Packages beyond catvae's own whose classes a config may name as _target_ (catvae.core.targets):
    # a list of "package.*" patterns or exact dotted paths, e.g. [mylab.networks.*].
    extra_trusted_targets: List[str] = field(default_factory=list)


@dataclass
class SearchSchema:
    """``conf/search_job.yaml``: one job of a search."""

    data: DataConfig = field(default_factory=DataConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    latent: Dict[str, Any] = field(default_factory=dict)  # conf/latent: the class density drawn from (validate builds it dry)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    logger: Dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    search: Any = MISSING  # typed by the search option's own schema (SEARCH_SCHEMAS)
    latent_dim: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Packages beyond catvae's own whose classes a config may name as _target_ (catvae.core.targets):
    # a list of "package.*" patterns or exact dotted paths, e.g. [mylab.networks.*].
    extra_trusted_targets: List[str] = field(default_factory=list)


@dataclass
class JudgeSchema:
    """``conf/judge.yaml``: ``python -m catvae.judge``."""

    data: DataConfig = field(default_factory=DataConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    trainer: Dict[str, Any] = field(default_factory=dict)  # as TrainSchema's
    logger: Dict[str, Any] = field(default_factory=dict)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = MISSING
    resume: bool = True
    eval: JudgeEvalConfig = field(default_factory=JudgeEvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Packages beyond catvae's own whose classes a config may name as _target_ (catvae.core.targets):
    # a list of "package.*" patterns or exact dotted paths, e.g. [mylab.networks.*].
    extra_trusted_targets: List[str] = field(default_factory=list)


@dataclass
class GenerateSchema:
    """``conf/generate.yaml``."""

    data: DataConfig = field(default_factory=DataConfig)
    vae: VaeConfig = field(default_factory=VaeConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    latent: Dict[str, Any] = field(default_factory=dict)  # conf/latent: the class density drawn from (validate builds it dry)
    paths: PathsConfig = field(default_factory=PathsConfig)
    latent_dim: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    label: Any = MISSING  # "all" or a class label (validate)
    num: int = MISSING
    sample_seed: int = MISSING
    out: Optional[str] = None
    png: Optional[str] = None
    # Packages beyond catvae's own whose classes a config may name as _target_ (catvae.core.targets):
    # a list of "package.*" patterns or exact dotted paths, e.g. [mylab.networks.*].
    extra_trusted_targets: List[str] = field(default_factory=list)


def register_schemas() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent), before any composition of ``conf/``."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    schemas = (
        (TRAIN_SCHEMA, TrainSchema),
        (SEARCH_SCHEMA, SearchSchema),
        (GENERATE_SCHEMA, GenerateSchema),
        (JUDGE_SCHEMA, JudgeSchema),
    )
    for name, schema in schemas:
        store.store(name=name, node=schema)
    store.store(group="cluster", name=CLUSTER_SCHEMA, node=ClusterConfig)
    for method_schema, method_name, _ in SEARCH_SCHEMAS.values():
        store.store(group="search", name=method_name, node=method_schema, package="search")


def allowed_for(error: Any) -> str:
    """What the node an OmegaConf type error is about accepts, in words ("an integer", "one of
    constant, onecycle", "… or null"): the existing node's type, or a list's element type."""
    node, parent = error.child_node, error.parent_node
    if node is not None:
        return _words(node._metadata.ref_type, node._is_optional())
    if isinstance(parent, ListConfig):
        return _words(parent._metadata.element_type, False)
    return "a value of the declared type"


def _words(ref_type: Any, optional: bool) -> str:
    args = [arg for arg in typing.get_args(ref_type) if arg is not type(None)]
    if typing.get_origin(ref_type) is typing.Union and len(args) == 1:  # Optional[X]
        ref_type, optional = args[0], True
    origin = typing.get_origin(ref_type)
    if origin is typing.Literal:
        allowed = "one of " + ", ".join(str(choice) for choice in typing.get_args(ref_type))
    elif origin in (list, tuple, ListConfig) or ref_type in (list, tuple):
        allowed = "a list"
    elif origin in (dict, DictConfig) or ref_type is dict or dataclasses.is_dataclass(ref_type):
        allowed = "a mapping (key: value)"
    else:
        words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        allowed = words.get(ref_type, "a value of its type")
    return f"{allowed} or null" if optional else allowed
