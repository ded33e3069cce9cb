"""Tests of codexflow.providers (a package, so module names cannot clash with other test folders)."""
