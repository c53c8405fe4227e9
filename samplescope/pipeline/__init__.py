"""The jobs the CLI and the Python API run: train and analyze. Each writes a run atomically."""
