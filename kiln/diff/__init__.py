"""Diffs that never reveal a Secret: the library behind ``kiln diff``.

- :mod:`kiln.diff.normalise`: server bookkeeping and defaults set aside;
- :mod:`kiln.diff.mask`: Secrets (and listed kinds) per key, no value, length or equality;
- :mod:`kiln.diff.objects`: objects paired by identity, each pair masked and diffed;
- :mod:`kiln.diff.report`: text, JSON and Markdown reports;
- :mod:`kiln.diff.against`: the other side from a git revision or a directory;
- :mod:`kiln.diff.live`: the other side from a cluster (through :mod:`kiln.apply`);
- :mod:`kiln.diff.many`: every Argo CD Application against a revision (a pull request);
- :mod:`kiln.diff.many_report`: its text, JSON and size-bounded Markdown reports;
- :mod:`kiln.diff.fingerprint`: the operator's opt-in HMAC of masked values;
- :mod:`kiln.diff.commands`: the ``kiln diff`` command.

Nothing in this package imports a Kubernetes client unless a live diff is asked for.

Importing this package imports none of its modules (``kiln diff``'s registration is cheap):
import the module you need, e.g. ``from kiln.diff.objects import diff_objects``.
"""
