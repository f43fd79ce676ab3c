"""``kiln apply``: rendered, resolved objects onto a cluster by server-side apply.

The pieces, each with one job: :mod:`~kiln.apply.cluster` (kubeconfig / in-cluster access),
:mod:`~kiln.apply.api` (the requests and their one-line errors), :mod:`~kiln.apply.staging`
(apply order), :mod:`~kiln.apply.applyset` (KEP-3659 parent and kiln's inventory),
:mod:`~kiln.apply.kstatus` (readiness), :mod:`~kiln.apply.applier` (:class:`Applier`),
:mod:`~kiln.apply.live` (live/desired pairs for ``kiln diff``), :mod:`~kiln.apply.progress`
and :mod:`~kiln.apply.commands` (the click command). Nothing here is imported by
``kiln render``: the ``kubernetes`` client is loaded only when a cluster is contacted.
"""
