"""``python -m kiln.cmp`` runs the ``cmp`` command group on its own."""

from kiln.cmp.commands import main

main()
