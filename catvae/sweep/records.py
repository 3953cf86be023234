"""The best configuration a search found for each (artifact key, class density, generator), and its use.

Layout: ``{search_records_dir}/{data}/{vae}-{latent_dim}/seed{seed}/{latent}-{generator}.json``
(``paths.search_records_dir``, by default ``logs/search/best``; ``latent`` is the class density,
``latent.name``: a θ tuned on the mixture is no θ for the diagonal Gaussian). Only the search's sweep summary
writes here; the artifact folder stays ``catvae.train``'s alone, so retraining cannot delete a
record and a search cannot touch the models. Each record names the models it scored by their
fingerprint (:func:`catvae.artifacts.fingerprint`): a record made on other models (the key
was retrained since) is refused where it would be used, and replaced by the next search.

``generator.from_search=best`` is resolved here, by the entry points, into plain θ and n before
the generator is built: generators never open files.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from catvae.artifacts import ArtifactKey, Models
from catvae.core.errors import ArtifactError, ConfigError, MissingArtifactsError
from catvae.core.files import write_json
from catvae.generators.gaussian import Medium1, Medium2, Simple, ThetaError, check_theta, generator_name

FROM_SEARCH = "generator.from_search"


def record_path(records_dir: str | Path, key: ArtifactKey, generator: str, latent: str) -> Path:
    """Where the best configuration of ``generator`` drawing from the class density ``latent`` on
    the models of ``key`` is recorded."""
    return key.folder(records_dir) / f"{latent}-{generator}.json"


def search_command(key: ArtifactKey, generator: str, latent: str) -> str:
    """The search that (re)makes a record for ``key``, ``generator`` and ``latent``."""
    return (
        f"python -m catvae.search -m data={key.data} vae={key.vae} latent_dim={key.latent_dim} seed={key.seed} "
        f"latent={latent} generator={generator} search={'paper_grid' if generator == 'simple' else 'optuna'}"
    )


def record_best(path: Path, candidate: dict) -> bool:
    """Keep ``candidate`` (holding ``objective``, ``eval``, ``models.fingerprint`` and the generator
    ``config``) at ``path`` if it is better than the record there; True when it was written.

    A record made on other models is replaced (its θ was tuned for models that are gone). On the
    same models: under the same evaluation settings the lower objective wins; under other
    settings the record scored on more samples per label wins, so a quick low-sample sweep does
    not replace a full one. An unreadable record is replaced.
    """
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    # Several sweeps (processes sharing a study, parallel launchers) may finish at once: the read,
    # the comparison and the write are one step under a lock, so a worse record never overwrites a
    # better one written in between. (A file lock: processes on several machines need a file
    # system with working locks, e.g. NFSv4, for their records folder.)
    with FileLock(path.parent / f".{path.name}.lock"):
        try:
            recorded = json.loads(path.read_text()) if path.is_file() else None
        except ValueError:
            recorded = None
        if isinstance(recorded, dict) and (recorded.get("models") or {}).get("fingerprint") == candidate["models"]["fingerprint"]:
            if recorded.get("eval") == candidate.get("eval"):
                if recorded["objective"] <= candidate["objective"]:
                    return False
            elif recorded.get("eval", {}).get("samples_per_label", 0) > candidate["eval"]["samples_per_label"]:
                return False
        write_json(candidate, path)  # atomic: a reader sees the old record or the new one
    return True


def _short(fingerprint: dict[str, str]) -> str:
    """``vae.pt sha256 1a2b…, …``: enough of each digest to tell two sets of models apart."""
    return ", ".join(f"{name} sha256 {digest[:12]}…" for name, digest in sorted(fingerprint.items()))


def load_best(records_dir: str | Path, key: ArtifactKey, generator: str, models: Models, latent: str) -> dict:
    """The record of ``generator`` on the density ``latent`` for ``key``, made on ``models`` (as loaded, with their fingerprint).

    Raises MissingArtifactsError when no search has been recorded, ArtifactError when the record
    is unreadable or was made on other models; each message names the search that remakes it.
    """
    path = record_path(records_dir, key, generator, latent)
    remake = f"Search the current models first, e.g.\n  {search_command(key, generator, latent)}"
    if not path.is_file():
        raise MissingArtifactsError(
            f"{FROM_SEARCH}=best: no search of generator={generator} latent={latent} has been recorded for data={key.data} "
            f"vae={key.vae} latent_dim={key.latent_dim} seed={key.seed} ({path} is missing). {remake}"
        )
    try:
        record = json.loads(path.read_text())
        made_on, config = record["models"]["fingerprint"], record["config"]
        if not isinstance(made_on, dict) or not isinstance(config, dict):
            raise TypeError("models.fingerprint and config must be mappings")
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactError(
            f"{FROM_SEARCH}=best: the search record {path} is unreadable ({error}); "
            f"delete it and search again:\n  {search_command(key, generator, latent)}"
        ) from error
    if made_on != models.fingerprint:
        searched = (record.get("provenance") or {}).get("time", "an unknown time")
        raise ArtifactError(
            f"{FROM_SEARCH}=best: the best {generator} configuration recorded in {path} was found by a search "
            f"(at {searched}) on other models ({_short(made_on)}); the models now in {models.folder} are "
            f"{_short(models.fingerprint)}: they were retrained after that search, so its θ was not tuned on them. "
            f"{remake}"
        )
    check_recorded_theta(record, path, generator, models, key, latent)
    return record


def check_recorded_theta(record: dict, path: Path, generator: str, models: Models, key: ArtifactKey, latent: str) -> None:
    """A record's θ and n fit the generator on these models (a hand-edited or foreign record would
    otherwise fail deep in sampling); an ArtifactError naming the record if not."""
    kind = {cls.name: cls for cls in (Simple, Medium1, Medium2)}.get(generator, Simple)
    config = record["config"]
    shape = kind.theta_shape_for(models.stats.num_classes, models.stats.latent_dim)
    n, problem = config.get("n"), None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        problem = f"n={n!r} is not an integer >= 1"
    else:
        try:
            check_theta(config.get("theta"), shape)
        except ThetaError as error:
            problem = str(error)
    if problem is not None:
        raise ArtifactError(
            f"{FROM_SEARCH}=best: the search record {path} holds a {generator} configuration that does not fit "
            f"the models in {models.folder} ({problem}); delete it and search again:\n  {search_command(key, generator, latent)}"
        )


def resolve_generator(
    node: Mapping[str, Any], records_dir: str | Path, key: ArtifactKey, models: Models, latent: str
) -> dict[str, Any]:
    """The generator node (plain, as configured) with ``from_search`` resolved, as a new plain mapping:
    ``best`` replaces θ and n by those of the record made on ``models`` with the class density
    ``latent`` (see :func:`load_best`); null leaves them as configured."""
    params = copy.deepcopy(dict(node))
    source = params.pop("from_search", None)
    if source is not None:
        if source != "best":
            raise ConfigError(FROM_SEARCH, source, "null or best")
        record = load_best(records_dir, key, generator_name(params), models, latent)
        params.update({k: v for k, v in record["config"].items() if k not in ("_target_", "from_search")})
    return params
