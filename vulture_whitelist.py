"""Names vulture cannot see used: called by name by pluggy, click, Python or PyYAML.

CI runs ``vulture kiln vulture_whitelist.py --min-confidence 60``: any other unused function,
method, attribute or variable in ``kiln`` fails the build. Add a name here only when something
outside kiln's own code calls it, and say what. Never executed (only parsed by vulture).
"""

# ruff: noqa: B018, F821

# Python: the lazy ``from kiln import Engine`` (PEP 562 module __getattr__).
__getattr__

# click: commands registered by their decorators.
generate
cache_stats
cache_clear
cache_gc
discover

# pluggy: hook specifications and the built-in plugins' implementations, called by name.
kiln_register_renderers
kiln_register_secret_resolvers

# Public API: kiln has no apply step; a library caller that applies calls this to run the
# documented kiln_before_apply hooks (docs/plugins.md).
_.before_apply

# logging: the redacting filter rewrites the record's cached traceback text.
_.exc_text

# PyYAML: the YAML 1.2 loader's resolver table, read by PyYAML itself.
_.yaml_implicit_resolvers

# sops metadata: parsed and checked for shape (a malformed value is an error naming it); the
# in-process path reads key groups, the sops binary applies the threshold.
shamir_threshold

# PyYAML: the loader's resolver hooks, called by name while composing (kiln/core/manifests.py).
_.descend_resolver
_.ascend_resolver
_.ignore_aliases

# Public API: the engine's key recipe (issue: "the engine exposes its key recipe"), for library
# callers and the contract tests; render() uses the same _recipe.
_.key_recipe

# Plugin protocol members the registry reads by name (Registry.member): declared on the
# protocols and base classes, set by plugins.
_.priority
_.faces

# RenderContext service for third-party renderers (docs/plugins.md): render another app through
# the engine. No built-in plugin needs it since helmTemplate asks for a chart renderer.
_.render_nested

# Optional protocol member the registry reads by name (kiln --version, the engine's key).
_.tool_version

# Declared data on Flag/Parameter (kiln/core/faces.py): which values reach a tool's argv. The
# checks themselves live in the plugins (kiln/core/argv.py); nothing in kiln reads the flag yet.
_.argv_bound
_.chart_app  # renderer capability, asked by name (RendererRegistry.first)
_.backend_for_store  # resolver capability, asked by name (ResolverRegistry.first)
_.current_parameters  # renderer capability, asked by name (kiln cmp parameters)

# The CMP server (kiln/cmp/server.py) reads these from kiln.cmp.stream.Received and
# kiln.core.sourcetree.SourceTree (the TreeView protocol's shape_digest included).
compressed_bytes
reused
symlinks
is_executable
subtree_paths
shape_digest
# The server core's public API (kiln/server/, docs/architecture.md "The server core"), used by
# the protocol layers (kiln cmp serve, kiln serve) and the tests.
_.from_remaining
_.draining
_.slot
_.ServerCore
_.flights
_.count_render
_.add_stream_bytes
_.add_extracted_bytes
_.add_extraction_avoided_bytes
_.count_tree_cache_hit
_.exposition
_.serve_metrics
_.current_request_id
_.install
_.shared
_.running
_.waiting
_.do
_.__traceback__
# kiln.diff library API for other callers (docs/diff.md): one object (a dry-run response) or
# one API error body masked on its own.
_.mask_object
_.mask_api_error

# The CMP servicer's methods are called by grpc by name (the generated base class).
_.GenerateManifest
_.MatchRepository
_.GetParametersAnnouncement
_.CheckPluginConfiguration
STATUSES  # kiln.apply.kstatus: the documented set of answers status_of gives

# kiln.apps.AppSpec: read by the multi-app runner (kiln.many), hydrate and the PR diff.
_.app_settings
