"""What each sample metric group of :mod:`catvae.evaluation.sample_metrics` produces: its result keys and their titles.

Kept apart from the metrics' code (which needs torch and torchmetrics) so that the commands that
only read results (``catvae.report``, the sweep summary) derive their columns without importing
them. Adding a metric group: its computation in ``sample_metrics.py`` and its keys here; every
column list (search's result keys, the sweep's ``trials.csv``, the report's tables) follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricKey:
    """One result key a sample metric produces: its ``title`` in tables and figures, and whether
    the report's frontier table shows it (``table``)."""

    key: str
    title: str
    table: bool = True


# Each metric group (``eval.sample_metrics``) declares the result keys it produces, in this order;
# every column list (search's results, the sweep summary, the report's tables) is derived from here.
METRIC_GROUP_KEYS: dict[str, tuple[MetricKey, ...]] = {
    "fid": (MetricKey("fid", "FID"),),
    "prdc": (
        MetricKey("precision", "precision"),
        MetricKey("recall", "recall"),
        MetricKey("density", "density"),
        MetricKey("coverage", "coverage"),
    ),
    # The median distance is in pixels and depends on the dataset; the table compares the share of near copies.
    "novelty": (MetricKey("nn_distance", "NN distance", table=False), MetricKey("near_copies", "near copies")),
}
CAS_KEYS = (MetricKey("cas", "CAS"),)  # eval.cas: scored apart from the groups (it trains a classifier)
METRIC_GROUPS = tuple(METRIC_GROUP_KEYS)  # eval.sample_metrics: what each names is below
GROUP_KEYS = {group: tuple(m.key for m in keys) for group, keys in METRIC_GROUP_KEYS.items()}
SAMPLE_METRICS = (*(m for keys in METRIC_GROUP_KEYS.values() for m in keys), *CAS_KEYS)
SAMPLE_METRIC_KEYS = tuple(m.key for m in SAMPLE_METRICS)  # every key a search result may hold, in order
SAMPLE_METRIC_TITLES = {m.key: m.title for m in SAMPLE_METRICS}
