"""Each rule once (issue 15): the generator's class owns its argument rules (n >= 1, fill >= 0);
validation builds the node dry and names the config key, with the messages of before."""

from __future__ import annotations

import inspect

import pytest

from catvae.config import validate
from catvae.config.registry import instantiate
from catvae.config.validate import VALIDATORS, built_dry
from catvae.core.errors import ArgumentError, ConfigError
from catvae.generators.gaussian import Medium2, Simple

COMMANDS = {"train": "train", "search_job": "search", "generate": "generate"}
CASES = [
    (["generator.n=0"], "generator.n=0 is not allowed: an integer >= 1"),
    (["generator=medium1", "generator.n=-3"], "generator.n=-3 is not allowed: an integer >= 1"),
    (["generator.fill=-1"], "generator.fill=-1.0 is not allowed: a number >= 0"),
    (["generator=medium2", "generator.fill=-0.5"], "generator.fill=-0.5 is not allowed: a number >= 0"),
    (["generator.n=0", "generator.theta=-1"], "generator.n=0 is not allowed: an integer >= 1"),  # n before θ, as before
    (["generator.theta=nan"], "generator.theta=nan is not allowed: a number >= 0 (simple, latent_dim=4)"),  # θ: with its shape
]


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[" ".join(case[0]) for case in CASES])
def test_the_generators_own_rules_name_the_config_key(make_config, name, overrides, message):
    with pytest.raises(ConfigError) as raised:
        VALIDATORS[COMMANDS[name]](make_config(name, ["latent_dim=4", *overrides]))
    assert str(raised.value) == message


def test_the_class_owns_the_rule():
    with pytest.raises(ArgumentError) as raised:
        Medium2(0.5, n=2, fill=float("inf"))
    assert (raised.value.argument, raised.value.value, raised.value.allowed) == ("fill", float("inf"), "a number >= 0")
    assert str(raised.value) == "fill=inf is not allowed: a number >= 0"
    assert isinstance(raised.value, ValueError)  # what callers of the class caught before
    # validation no longer repeats it: check_generator names no generator.n / generator.fill rule of its own
    source = inspect.getsource(validate.check_generator)
    assert '"generator.n"' not in source and '"generator.fill"' not in source


def test_built_dry_unwraps_hydras_wrapper_and_passes_what_the_caller_words():
    node = {"_target_": "catvae.generators.gaussian.Simple", "theta": 0.4, "n": 0}
    with pytest.raises(ConfigError) as raised:
        built_dry(lambda: instantiate(node), "generator")
    assert str(raised.value) == "generator.n=0 is not allowed: an integer >= 1"
    assert built_dry(lambda: Simple(-1.0), "generator", passing=(ValueError,)) is None
    assert isinstance(built_dry(lambda: Simple(0.3, n=3), "generator"), Simple)
    with pytest.raises(ZeroDivisionError):  # anything else is a bug: it propagates
        built_dry(lambda: 1 / 0, "generator")
