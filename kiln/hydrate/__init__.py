"""``kiln hydrate``: the rendered-manifests pattern in Argo CD 3.x Source Hydrator's layout.

- :mod:`kiln.hydrate.manifest`: ``manifest.yaml`` bytes as Argo CD's commit server encodes them.
- :mod:`kiln.hydrate.layout`: ``hydrator.metadata``, ``README.md``, ``.gitattributes``, the dry
  commit and the hydrated commit's message.
- :mod:`kiln.hydrate.guard`: no resolved secret value reaches the output.
- :mod:`kiln.hydrate.writer`: the tree written atomically, stale apps removed, no symlink
  followed.
- :mod:`kiln.hydrate.run`: rendered apps to hydrated apps (destinations, convert mode, checks).
- :mod:`kiln.hydrate.commit`: the branch, its private worktree, the commit, notes and push.
- :mod:`kiln.hydrate.commands`: the ``kiln hydrate`` command.
"""
