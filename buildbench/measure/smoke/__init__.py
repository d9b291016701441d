"""Containerized inference smoke test: every image proves it runs a real model."""
