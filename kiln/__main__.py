"""``python -m kiln`` runs the CLI."""

from kiln.entry import main

main()
