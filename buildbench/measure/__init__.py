"""Measuring a built image: sizes, contents, and the smoke test."""
