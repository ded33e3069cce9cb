"""Prefect entrypoint for deployments: `flows/apply_spec.py:apply_spec` (see prefect.yaml).

The flow itself lives in the package (`codexflow.runtime.flow`), so `codexflow apply`, a
deployment run and a retry from the UI run the very same code."""

from codexflow.runtime.flow import apply_spec

__all__ = ["apply_spec"]
