"""Open an Optuna study's storage safely when many processes start on an empty database at once.

Optuna's :class:`~optuna.storages.RDBStorage` creates its schema on first use (``create_all``, then
its version row and Alembic's stamp), each in its own transaction and with no lock. Processes that
start together on an empty database race: measured here with 4 processes started at one instant,
8 of 10 tries on PostgreSQL 15 had a process fail (``UniqueViolation … pg_type_typname_nsp_index``
on ``CREATE TYPE studydirection``, or ``DuplicateTable alembic_version``), and 8 of 10 on a new
SQLite file (``table studies already exists``, ``UNIQUE constraint failed:
alembic_version.version_num``). The study row itself is safe: ``create_study(load_if_exists=True)``
turns the unique-name violation into loading the study.

:func:`open_study` creates the schema and the study before the sweeper touches them (from the
:class:`~catvae.config.callbacks.ResumeStudy` callback, which Hydra runs before it instantiates the
sweeper), retrying on the errors a lost race raises, with a short jittered back-off and a bounded
number of tries. Why retries rather than a lock: every step Optuna takes is idempotent once
another process has finished it (``create_all`` skips tables that exist, the version row and the
Alembic stamp are written only when absent, the study is loaded when its name exists), and the
loser's transaction is rolled back whole (PostgreSQL's DDL is transactional; SQLite's writes are
serialised by its file lock), so trying again converges. It works the same for every backend
Optuna supports and across machines, where a PostgreSQL advisory lock would cover PostgreSQL only
and a file lock not a database on another host. Once the schema and study exist, the sweeper's own
``create_study(load_if_exists=True)`` only reads them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from catvae.core.errors import ConfigError

if TYPE_CHECKING:
    from optuna.storages import RDBStorage
    from optuna.study import Study

log = logging.getLogger(__name__)
T = TypeVar("T")

TRIES = 12  # with the back-off below, about 10 s in all before giving up
FIRST_WAIT_S = 0.05
MAX_WAIT_S = 2.0


def hide_password(url: str) -> str:
    """``url`` with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def retried(step: Callable[[], T], what: str, tries: int = TRIES, sleep: Callable[[float], None] | None = None) -> T:
    """``step()``, tried again on the errors a process that lost a creation race gets (SQLAlchemy's
    IntegrityError: a unique key another process just wrote; OperationalError: "database is locked",
    SQLite's "table … already exists"; ProgrammingError: PostgreSQL's DuplicateTable), after
    ``FIRST_WAIT_S · 2^k`` seconds (at most ``MAX_WAIT_S``) with ±50 % jitter so that the racers
    spread out. The last error propagates after ``tries`` tries (a database that cannot be reached
    fails the same way, a few seconds later). ``sleep``: how to wait (``time.sleep``, looked up when
    it waits)."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(tries):
        try:
            return step()
        except (IntegrityError, OperationalError, ProgrammingError) as error:
            if attempt == tries - 1:
                raise
            wait = min(MAX_WAIT_S, FIRST_WAIT_S * 2**attempt) * random.uniform(0.5, 1.5)
            log.info("%s: %s; trying again in %.2f s", what, str(error).splitlines()[0], wait)
            (sleep or time.sleep)(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage at ``url``, its schema created if it is not there yet (safely, see the module)."""
    from optuna.storages import RDBStorage

    try:
        return retried(lambda: RDBStorage(url), "creating the Optuna schema")
    except ImportError as error:  # Optuna's message for a missing driver (psycopg for postgresql+psycopg)
        raise ConfigError(
            "search.storage_url",
            hide_password(url),
            f"a URL whose database driver is installed ({error}; for PostgreSQL: pip install 'catvae[postgres]')",
        ) from error
    except Exception as error:
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        if isinstance(error, (ArgumentError, SQLAlchemyError)):
            raise ConfigError(
                "search.storage_url",
                hide_password(url),
                f"an SQLAlchemy URL of a database Optuna can open (it failed: {str(error).splitlines()[0]})",
            ) from error
        raise


def open_study(url: str, study_name: str, directions: Sequence[str] = ("minimize",)) -> tuple[RDBStorage, Study]:
    """The storage at ``url`` and its study ``study_name``, both created if absent, the study with
    ``directions`` (those of the sweeper: ``hydra.sweeper.direction``). Safe when many processes
    call it at once on an empty database."""
    import optuna
    from optuna.study import StudyDirection

    wanted = [d.lower() for d in directions]
    if not wanted or any(d not in ("minimize", "maximize") for d in wanted):
        raise ConfigError("hydra.sweeper.direction", ",".join(directions), "minimize or maximize (or a list of them)")
    storage = open_storage(url)
    study = retried(
        lambda: optuna.create_study(
            study_name=study_name,
            storage=storage,
            directions=[StudyDirection[d.upper()] for d in wanted],
            sampler=optuna.samplers.RandomSampler(),  # not stored; the sweeper brings its own
            load_if_exists=True,
        ),
        f"creating Optuna study {study_name}",
    )
    found = [d.name.lower() for d in study.directions]
    if found != wanted:
        raise ConfigError(
            "hydra.sweeper.direction",
            ",".join(directions),
            f"the direction of the existing study {study_name} in {hide_password(url)}: {','.join(found)}",
        )
    return storage, study
