"""kiln's built-in plugins. Each is an ordinary pluggy plugin; none imports another's internals."""
