"""Observability: metrics, access and error logs, traces (docs/observability.md)."""
