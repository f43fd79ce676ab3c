"""The Jsonnet worker: evaluates one program in a child process under resource limits.

The parent (:mod:`kiln.plugins.jsonnet.runner`) sends one request frame; the worker imports
go-jsonnet, caps its address space (``RLIMIT_AS``: what the Go runtime has reserved at start
plus ``maxMemory``), evaluates with an import callback confined to the source root, and answers
with one ``done`` or ``error`` frame. In between, ``helmTemplate`` calls send ``helm`` frames and
wait for the parent's reply. Started by fork, or as ``python -c`` with :func:`main`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from kiln.core.errors import InputError, KilnError
from kiln.core.paths import read_bytes_capped
from kiln.plugins.jsonnet import protocol
from kiln.plugins.jsonnet.jpath import Resolver
from kiln.plugins.jsonnet.messages import describe
from kiln.plugins.jsonnet.natives import (
    Ask,
    NativeState,
    native_callbacks,
    rewrite_native_calls,
)
from kiln.plugins.jsonnet.scan import MAX_FILE_BYTES

MAX_TRACE = 20
CODE_SUFFIXES = (".jsonnet", ".libsonnet")


def serve(rfd: int, wfd: int) -> None:
    """Answer one request read from ``rfd`` on ``wfd``; never raises (errors become frames)."""
    try:
        request = protocol.recv(rfd)
    except (EOFError, OSError, ValueError):
        return
    try:
        reply = evaluate(request, lambda msg: _ask(rfd, wfd, msg))
    except MemoryError:
        reply = {"op": "error", "kind": "memory"}
    except InputError as exc:
        reply = {"op": "error", "kind": "input", "message": exc.message, "source": exc.source}
    except KilnError as exc:
        reply = {"op": "error", "kind": "render", "message": exc.message, "source": exc.source}
    except Exception as exc:  # noqa: BLE001 - report anything else as one line, not a trace
        reply = {"op": "error", "kind": "render", "message": f"{type(exc).__name__}: {exc}",
                 "source": None}
    try:
        protocol.send(wfd, reply)
    except MemoryError:
        with contextlib.suppress(OSError, MemoryError):
            protocol.send(wfd, {"op": "error", "kind": "memory"})
    except OSError:
        pass


def _ask(rfd: int, wfd: int, message: dict[str, Any]) -> Any:
    protocol.send(wfd, message)
    return protocol.recv(rfd)


def limit_cpu(seconds: float) -> None:
    """Backstop for an orphaned worker: the kernel kills it after ``seconds`` of CPU time
    (the parent's wall-clock timeout normally fires long before)."""
    if seconds <= 0:
        return
    import resource

    limit = int(seconds) + 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and hard < limit + 1:
        return
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))


def limit_memory(max_bytes: int) -> None:
    """Cap the address space at its current size plus ``max_bytes`` (0: no cap)."""
    if max_bytes <= 0:
        return
    import resource

    current = _vm_size()
    limit = current + max_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _vm_size() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def evaluate(request: dict[str, Any], ask: Ask) -> dict[str, Any]:
    """Evaluate the request's entry file; return the ``done`` frame (JSON text + files read)."""
    import _gojsonnet  # type: ignore[import-not-found]

    _gojsonnet.evaluate_snippet("<kiln-init>", "null")  # start the Go runtime before capping
    limit_memory(int(request["maxMemory"]))
    limit_cpu(float(request.get("cpuSeconds", 0)))
    root = request["root"]
    resolver = Resolver(Path(root), [Path(p) for p in request["jpath"]])
    loaded: list[str] = []
    # go-jsonnet's Python binding mangles an import callback's error text (stray bytes, even
    # undecodable ones), so failures are recorded here and reported from this record.
    import_failures: list[tuple[str, str, str]] = []

    def import_callback(directory: str, imported: str) -> tuple[str, bytes]:
        importer_dir = directory.rstrip("/") or "/"
        try:
            found = resolver.resolve(importer_dir, imported)
            if found is None:
                searched = ", ".join(resolver.search_dirs(importer_dir))
                raise InputError(f"cannot find import {imported!r} (searched {searched})")
            data = read_bytes_capped(Path(found), MAX_FILE_BYTES)
            if found.endswith(CODE_SUFFIXES) and b"helmTemplate" in data:
                data = rewrite_native_calls(data.decode("utf-8", "replace")).encode("utf-8")
        except InputError as exc:
            import_failures.append((importer_dir, imported, exc.message))
            raise RuntimeError("import failed") from None
        loaded.append(found)
        return found, data

    entry_data = read_bytes_capped(Path(request["entry"]), MAX_FILE_BYTES)
    entry_text = rewrite_native_calls(entry_data.decode("utf-8", "replace"))
    state = NativeState()
    natives = native_callbacks(state, ask, request["appDir"], root)
    try:
        text = _gojsonnet.evaluate_snippet(
            request["entry"],
            entry_text,
            max_stack=int(request["maxStack"]),
            max_trace=MAX_TRACE,
            ext_vars=request["extVars"],
            ext_codes=request["extCodes"],
            tla_vars=request["tlaVars"],
            tla_codes=request["tlaCodes"],
            import_callback=import_callback,
            native_callbacks=natives,
        )
    except (RuntimeError, UnicodeDecodeError) as exc:
        text = str(exc) if isinstance(exc, RuntimeError) else ""
        location, message = describe(text, native_error=state.error,
                                     max_stack=int(request["maxStack"]))
        if import_failures:  # Jsonnet cannot catch errors: a failed import is the cause
            directory, imported, message = import_failures[-1]
            site = _import_site(directory, imported, [request["entry"], *loaded])
            return {"op": "error", "kind": "input", "message": message,
                    "source": site or location}
        return {"op": "error", "kind": "render", "message": message, "source": location}
    if len(text) > int(request["maxOutput"]):
        return {"op": "error", "kind": "output", "message": (
            f"output is larger than {request['maxOutput']} bytes (jsonnet.maxOutputBytes)"),
            "source": request["entry"]}
    return {"op": "done", "json": text, "loaded": sorted(set(loaded))}


def _import_site(directory: str, imported: str, files: list[str]) -> str | None:
    """``file:line`` of the first import of ``imported`` by a file in ``directory``."""
    from kiln.plugins.jsonnet.scan import find_imports

    for path in files:
        if os.path.dirname(path) != directory:
            continue
        try:
            text = read_bytes_capped(Path(path), MAX_FILE_BYTES).decode("utf-8", "replace")
        except InputError:
            continue
        for ref in find_imports(text):
            if ref.path == imported:
                return f"{path}:{ref.line}"
    return None


def main(rfd: int, wfd: int) -> None:
    """Entry point of a spawned worker: serve one request, then exit."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    try:
        serve(rfd, wfd)
    finally:
        os._exit(0)
