"""The one build setting pyproject.toml cannot state: the package list.

Every package under ``catvae/``, plus ``catvae.conf``, whose files are the top-level ``conf/``
(``package-dir`` in pyproject.toml): the Hydra configs ship inside the wheel, so an installed
catvae finds them from any folder.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["catvae", "catvae.*"]), "catvae.conf"])
