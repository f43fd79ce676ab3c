"""kiln's face for Argo CD: a Config Management Plugin (CMP) sidecar.

- :mod:`kiln.cmp.parameters`: the parameter table (name -> renderer option).
- :mod:`kiln.cmp.environment`: Argo CD's CMP environment -> kiln settings and build env.
- :mod:`kiln.cmp.detect`: can kiln render this directory (``kiln cmp discover``)?
- :mod:`kiln.cmp.announce`: per-app parameter announcements (``kiln cmp parameters``).
- :mod:`kiln.cmp.plugin_yaml`: the ``ConfigManagementPlugin`` (``kiln cmp plugin-yaml``).
- :mod:`kiln.cmp.commands`: the ``cmp`` click group.
"""
