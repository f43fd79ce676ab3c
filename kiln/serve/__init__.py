"""``kiln serve``: an HTTP/JSON repo-server for other controllers and CI.

``POST /v1/render`` renders an app from a local directory under the operator's allowed roots
or from a git repository at a revision, through the CMP server's core
(:class:`kiln.cmp.service.CmpService`: key memo, single-flight, gate, shared extractions).
The modules: :mod:`.models` (the typed request and response bodies the OpenAPI document is
generated from), :mod:`.auth` (bearer token, mTLS, loopback-only without either),
:mod:`.service` (a request into a render), :mod:`.app` (the FastAPI application),
:mod:`.runner` (uvicorn, signals, drain) and :mod:`.commands` (the click command).

FastAPI, uvicorn and pydantic are the ``serve`` extra: nothing here imports them at module
level except :mod:`.models` and :mod:`.app`, which only :mod:`.runner` imports, when the
server starts.
"""

from __future__ import annotations
