"""Reading a /metrics answer in tests: Prometheus's text format, parsed by prometheus-client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name` with exactly `labels`, or None when the exposition has none."""
    return samples(text).get((name, frozenset(labels.items())))


def label_values(text: str, name: str, label: str) -> set[str]:
    """Every value `label` takes among the samples called `name`."""
    found = (dict(labels) for sample, labels in samples(text) if sample == name)
    return {labels[label] for labels in found if label in labels}
