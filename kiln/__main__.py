"""``python -m kiln`` runs the CLI."""

from kiln.cli import main

main()
