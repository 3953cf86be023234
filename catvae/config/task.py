"""One wrapper for every command: errors a user can fix end in one message and exit status 2,
loggers are always closed, and a bug keeps its traceback and says where its run folder is.

- :func:`hydra_command` is the ``main`` of ``catvae.train``, ``catvae.search`` and ``catvae.generate``:
  Hydra composes the config (typed by :mod:`catvae.config.schema`), and a composition error (a wrong
  type, an unknown key or group option) is worded as ``KEY=VALUE is not allowed: …``.
- :func:`run_task` runs one job: validate the config, open its loggers, run the stage, close the
  loggers with the job's status (a W&B run is finished, so each job of a multirun is its own run).
- :func:`command_errors` gives the argparse commands (``report``, ``paper``, ``bench``) the same
  mapping of errors.
- The machine's own refusals (a full disk or quota, a read-only file system, a missing permission)
  are user errors too: one line naming the path, its file system and what to free or fix
  (:func:`storage_message`), exit status 2. The writes they interrupt leave no half-written file
  (:mod:`catvae.core.files`, :func:`catvae.artifacts.staged_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from catvae.core.errors import ConfigError, UserError
from catvae.core.files import STORAGE_ERRNOS, TORCH_WRITER_FAILURES, storage_error

T = TypeVar("T")
USER_ERROR_STATUS = 2
BUG_STATUS = 1


def hydra_command(config_name: str) -> Callable[[Callable[[DictConfig], T]], Callable[[], T | None]]:
    """Decorate a command's job function (``cfg → result``) into its ``main``: Hydra's ``@hydra.main``
    on ``conf/<config_name>.yaml``, and errors Hydra meets while composing worded as user errors.

    Hydra prints its composition errors itself and exits with status 1; with ``HYDRA_FULL_ERROR=1``
    it raises them instead (it changes nothing else), so they can be worded here and end with status 2.
    """
    import hydra

    from catvae.config.registry import CONFIG_PATH, TRUSTED_TARGETS

    def decorate(job: Callable[[DictConfig], T]) -> Callable[[], T | None]:
        hydra_main = hydra.main(config_path=CONFIG_PATH, config_name=config_name, execution_whitelist=TRUSTED_TARGETS)(job)

        @functools.wraps(job)
        def main() -> T | None:
            os.environ["HYDRA_FULL_ERROR"] = "1"
            try:
                return hydra_main()
            except Exception as error:
                fail(error, sys.argv[1:])

        return main

    return decorate


def run_main(module: str) -> None:
    """``if __name__ == "__main__"`` of a Hydra command: call ``main`` of the imported ``module``, not of
    ``__main__``. Hydra's joblib and submitit launchers pickle the job function to call it in another
    process; one defined in ``__main__`` is pickled by value with references to that module's globals
    (the model caches of ``catvae.search``), which the worker cannot find, so every job would fail."""
    import importlib

    importlib.import_module(module).main()


class ValidateSweep(Callback):
    """Hydra callback (``hydra.callbacks``): validate a multirun's shared config once, before the
    sweeper starts, so a bad value common to every job ends the command before any job folder or
    Optuna trial exists. Each job still validates its own config (its swept values)."""

    def __init__(self, command: str):
        from catvae.config.validate import VALIDATORS

        self.validate = VALIDATORS[command]

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exceptions into warnings; exiting is what stops the sweep.
        with command_errors():
            trust_configured_targets(config)
            self.validate(config)


def trust_configured_targets(cfg: DictConfig) -> None:
    """Add the root key ``extra_trusted_targets`` (``package.*`` patterns of a researcher's own
    modules: networks, metrics, datasets named by ``_target_``) to the trusted targets of this process."""
    from catvae.core.targets import trust

    extra = cfg.get("extra_trusted_targets") or []
    if not all(isinstance(pattern, str) and pattern.strip() for pattern in extra):
        raise ConfigError("extra_trusted_targets", list(extra), 'a list of "package.*" patterns or dotted paths')
    trust(extra)


def run_task(
    cfg: DictConfig,
    validate: Callable[[DictConfig], None],
    body: Callable[[list[Any]], T],
    after: Callable[[T], Any] | None = None,
    done: Callable[[DictConfig], T | None] | None = None,
) -> T:
    """Validate ``cfg``, then run ``body(loggers)`` with the loggers ``cfg.logger`` names, closing them
    whatever happens (status ``success`` or ``failed``); then ``after(result)``, if given, once they
    are closed (a search job times the loggers' whole cost, their close included). ``done(cfg)``, if
    given, may return the result of a job that already finished (a re-run of a killed multirun):
    it is returned as it is, with no logger opened.

    A user error (:class:`UserError`, also when ``hydra.utils.instantiate`` wraps one) ends the
    process: its message on stderr, exit status 2. Any other exception is a bug: it propagates with
    its traceback, noted with the run folder that holds the job's config and logs.
    """
    try:
        trust_configured_targets(cfg)
        validate(cfg)
        finished = done(cfg) if done is not None else None
        if finished is not None:
            return finished
        loggers = open_loggers(cfg)
        status = "failed"
        try:
            result = body(loggers)
            status = "success"
        finally:
            close_loggers(loggers, status)
        if after is not None:
            after(result)
        return result
    except Exception as error:
        message = user_message(error, cfg=cfg)
        if message is not None:
            exit_user_error(message)
        error.add_note(f"run folder (config and logs): {run_folder(cfg)}")
        raise


@contextlib.contextmanager
def command_errors() -> Iterator[None]:
    """For the argparse commands: a user error → its message and exit status 2; a bug keeps its traceback."""
    try:
        yield
    except Exception as error:
        message = user_message(error)
        if message is None:
            raise
        exit_user_error(message)


def fail(error: BaseException, argv: Sequence[str] = ()) -> NoReturn:
    """End the process for ``error``: worded with exit status 2 if the user can fix it, else its traceback and 1."""
    message = user_message(error, argv)
    if message is not None:
        exit_user_error(message)
    traceback.print_exception(error)
    sys.exit(BUG_STATUS)


def exit_user_error(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR_STATUS)


def user_message(error: BaseException, argv: Sequence[str] = (), cfg: DictConfig | None = None) -> str | None:
    """The message for an error the user can fix, None for a bug. ``argv``: the command line, to
    quote the value of an override that names an unknown key; ``cfg``: the job's config, to name
    the ``paths.*`` setting that moves a folder the machine refused."""
    from hydra.errors import InstantiationException

    cause = error
    # hydra.utils.instantiate wraps the target's own error; the one underneath explains.
    while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, UserError):
        return str(cause)
    refusal = machine_refusal(cause, cfg)
    if refusal is not None:
        return storage_message(refusal, cfg)
    worded = composition_error(cause, argv)
    return None if worded is None else str(worded)


def machine_refusal(error: BaseException, cfg: DictConfig | None = None) -> OSError | None:
    """The full disk, read-only file system or missing permission behind ``error`` (in its chain of
    causes), naming a path: its own, else the log folder (``paths.log_dir``, else the working folder)."""
    chained = [error]
    while chained[-1].__cause__ is not None and len(chained) < 16:
        chained.append(chained[-1].__cause__)
    refused = any(isinstance(link, OSError) and link.errno in STORAGE_ERRNOS for link in chained)
    torch_writer = isinstance(error, RuntimeError) and any(text in str(error) for text in TORCH_WRITER_FAILURES)
    if not (refused or torch_writer):  # torch's writer: storage_error looks at its context and the disk
        return None
    return storage_error(error, configured_path(cfg, "paths.log_dir") or os.getcwd())


def configured_path(cfg: DictConfig | None, key: str) -> str | None:
    """``cfg``'s value of ``key`` resolved, None where it has none or it does not resolve here."""
    if cfg is None:
        return None
    try:
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except Exception:
        return None
    return None if value is None else str(value)


def storage_message(refusal: OSError, cfg: DictConfig | None = None) -> str:
    """One line for the machine's refusal to write (or read) ``refusal.filename``: what happened, the
    path and its file system, and what to free or fix; the ``paths.*`` setting that moves it elsewhere."""
    import getpass

    path = os.path.abspath(os.fsdecode(refusal.filename))
    existing = path
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    mount = existing
    while not os.path.ismount(mount) and os.path.dirname(mount) != mount:
        mount = os.path.dirname(mount)
    setting_known = moving_setting(path, cfg)
    setting = setting_known or "paths.log_dir"
    reason = refusal.strerror or os.strerror(refusal.errno or 0)
    if refusal.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full" if refusal.errno == errno.ENOSPC else "the disk quota is used up"
        return (
            f"{what}: writing {path} failed ({reason}) on the file system at {mount} ({file_system_size(mount)}). "
            f"Free space there, or set {setting} to a folder on a disk with room, and run the command again"
        )
    if refusal.errno == errno.EROFS:
        return (
            f"the file system is read-only: writing {path} failed ({reason}; {mount} is mounted read-only). "
            f"Remount it read-write, or set {setting} to a writable folder, and run the command again"
        )
    user = getpass.getuser()
    access = "read" if os.path.exists(path) and not os.access(path, os.R_OK) else "write"
    status = os.stat(existing)
    tools = "chmod, chown, or chattr -i where it is immutable" if refusal.errno == errno.EPERM else "chmod, chown"
    # a file read outside the run's folders (a dataset's) has no setting to move it
    elsewhere = "" if access == "read" and not setting_known else f", or set {setting} to a folder {user} can {access}"
    return (
        f"permission denied: {user} may not {access} {path} ({reason}; {existing} has mode "
        f"{status.st_mode & 0o7777:o}, owner uid {status.st_uid}). Give {user} {access} permission there "
        f"({tools}){elsewhere}, and run the command again"
    )


def file_system_size(mount: str) -> str:
    """``3.0 MiB in all``, ``251.9 GiB in all``: the size of the file system at ``mount``."""
    try:
        status = os.statvfs(mount)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return "size unknown"
    size = status.f_blocks * status.f_frsize
    return f"{size / 2**30:.1f} GiB in all" if size >= 2**30 else f"{size / 2**20:.1f} MiB in all"


def moving_setting(path: str, cfg: DictConfig | None) -> str | None:
    """The ``paths.*`` key whose folder holds ``path`` most closely; None when none does (or ``cfg`` is unknown)."""
    holding = []
    for key in ("paths.log_dir", "paths.artifacts_dir", "paths.checkpoints_dir", "paths.search_records_dir"):
        folder = configured_path(cfg, key)
        if folder is not None:
            folder = os.path.abspath(folder)
            if path == folder or path.startswith(folder + os.sep):
                holding.append((len(folder), key))
    if not holding:
        return None
    holding.sort(reverse=True)
    closest = holding[0][1]
    under_log_dir = closest != "paths.log_dir" and any(key == "paths.log_dir" for _, key in holding)
    return f"{closest} (or paths.log_dir, which holds it)" if under_log_dir else closest


def composition_error(error: BaseException, argv: Sequence[str] = ()) -> ConfigError | str | None:
    """Hydra's and OmegaConf's errors about the composed config, worded: a :class:`ConfigError` where
    key and value are known, else Hydra's own text; None for anything else."""
    from hydra.errors import CompactHydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from catvae.config.validate import schema_error

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return ConfigError(group, option, f"one of {', '.join(error.options)}")
    cause = error.__cause__ if isinstance(error, CompactHydraException) else error
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return schema_error(cause, override_value(str(cause.full_key), argv))
    if isinstance(error, (CompactHydraException, OmegaConfBaseException)) or raised_in_hydra(error):
        text = str(error).strip()
        if isinstance(cause, OmegaConfBaseException) and cause is not error:
            text += f"\n{cause}"
        return text
    return None


def raised_in_hydra(error: BaseException) -> bool:
    """A ValueError that Hydra itself raised about the command line (``logger=3``: "Config group
    override must be a string or a list")."""
    import hydra

    if not isinstance(error, ValueError) or error.__traceback__ is None:
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(os.path.dirname(hydra.__file__) + os.sep)


def override_value(key: str, argv: Sequence[str]) -> Any:
    """The value the command line gives ``key`` (``vae.lrr=1`` → 1), None when it gives none."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in reversed(argv):  # the last override of a key is the one that counts
        if arg.startswith("-") or "=" not in arg:
            continue
        name = arg.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
        if name != key:
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:
            return arg.split("=", 1)[1]
        return arg.split("=", 1)[1] if override.is_sweep_override() else override.value()
    return None


def open_loggers(cfg: DictConfig) -> list[Any]:
    """The loggers ``cfg.logger`` names (none: nothing imported, so a command without loggers stays light)."""
    if not cfg.get("logger"):
        return []
    from catvae.core.loggers import build_loggers

    return build_loggers(OmegaConf.to_container(cfg.logger, resolve=True))  # type: ignore[arg-type]  # a mapping


def close_loggers(loggers: list[Any], status: str) -> None:
    if loggers:
        from catvae.core.loggers import close_loggers as close

        close(loggers, status)


def run_folder(cfg: DictConfig) -> str:
    """``paths.output_dir``, or a word saying it is unknown (outside a Hydra run nothing resolves it)."""
    try:
        return str(OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=True))
    except Exception:
        return "unknown (no paths.output_dir)"
