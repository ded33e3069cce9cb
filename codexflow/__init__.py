"""codexflow."""
