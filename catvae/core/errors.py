"""The errors a user can fix. Every command turns them into one message and exit status 2.

Library code (models, data, generators) raises them about its *own* arguments; the entry points
name the config key (``ConfigError``). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Something the user can fix: a bad value, bad data, a missing or unusable artifact."""


class ConfigError(UserError, ValueError):
    """A config value that is not allowed; the message names key, value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")


class DataError(UserError, ValueError):
    """A dataset that cannot be used as it is (unreadable, malformed, too small, a class too rare)."""


class ArtifactError(UserError):
    """A trained artifact or record that is corrupt, truncated, or written by an incompatible version."""


class MissingArtifactsError(ArtifactError, FileNotFoundError):
    """Raised when a command needs artifacts that ``catvae.train`` has not produced yet."""


class DivergenceError(UserError, FloatingPointError):
    """Training produced a NaN or infinite loss; nothing was published."""


class ArgumentError(ValueError):
    """A domain class refusing one of its own constructor's arguments (a generator's ``n``, a class
    density's fit option ``components.1``): ``argument=value is not allowed: allowed``. The class owns
    the rule; validation builds the config's node dry and puts the node's config key in front of
    ``argument`` (``generator.n``, ``densities.gmm.components.1``) in a :class:`ConfigError`
    (:func:`catvae.config.validate.built_dry`), so each rule is stated once, in the class it is about.
    Not a UserError by itself: code that passes a bad argument is a bug until a config gave it."""

    def __init__(self, argument: str, value: Any, allowed: str):
        self.argument, self.value, self.allowed = argument, value, allowed
        super().__init__(f"{argument}={value!r} is not allowed: {allowed}")
