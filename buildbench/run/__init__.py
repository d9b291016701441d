"""A run: what to build (matrix, config, build context), the pipeline, cleaning up after it."""
