"""SOPS-encrypted inputs of a build: found before it, decrypted or verified through the engine.

Flux decrypts ``secretGenerator`` ``files``/``envs`` and ``patches[].path`` files in place before
``kustomize build``. kiln does the same into its private build tree only: the plaintext is held in
memory, then written as new ``0600`` files replacing the hard links in a ``0700`` tree (on
``/dev/shm`` when there is one), deleted when the build ends. Such a render is uncacheable.

Whole-object SOPS resources pass through kustomize encrypted, but kustomize reorders their
fields, so the MAC can only be checked on the *source* file: :func:`verify_resources` does that
before every render (cache hit or not) and returns the tokens that tell the resolver which
objects were verified.

This plugin never imports the SOPS plugin: ``RenderContext.decrypt_file`` / ``verify_file`` reach
whichever enabled secret resolver handles such files. Spotting an encrypted file needs only
marker bytes (:mod:`kiln.core.sops_format`, the one test the SOPS resolver uses too: a file whose
MAC was removed still counts), so a disabled SOPS plugin is a clear error, never ciphertext fed
to kustomize.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core.errors import ConfigError
from kiln.core.sops_format import format_for_name, looks_encrypted

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.context import RenderContext
    from kiln.plugins.kustomize.walk import Closure

log = logging.getLogger("kiln.kustomize")

SHM = Path("/dev/shm")


@dataclass(frozen=True)
class Encrypted:
    """One encrypted file the build reads as data: where, what it is, its SOPS format, bytes."""

    path: Path
    what: str
    fmt: str
    data: bytes


def source_format(what: str, name: str) -> str:
    """The format Flux decrypts a source with: by the name's extension (a ``files`` entry's
    key, else the path), ``binary`` otherwise, except env files which default to dotenv."""
    fmt = format_for_name(name)
    if fmt == "binary" and what.endswith("env file"):
        return "dotenv"
    return fmt


def find_encrypted(closure: Closure) -> tuple[Encrypted, ...]:
    """The ``secretGenerator`` files/envs and patch files of ``closure`` that are encrypted."""
    found = []
    for path, (what, name) in sorted(closure.secret_sources.items()):
        data = path.read_bytes()
        if looks_encrypted(data):
            found.append(Encrypted(path, what, source_format(what, name), data))
    return tuple(found)


def find_sealed_resources(closure: Closure) -> tuple[Path, ...]:
    """Resource files holding a SOPS-encrypted object (a YAML or JSON MAC marker)."""
    return tuple(p for p in sorted(closure.resource_files)
                 if looks_encrypted(p.read_bytes(), structured=True))


def verify_resources(app: App, ctx: RenderContext, paths: tuple[Path, ...]) -> frozenset[str]:
    """Verify the MAC of each encrypted resource file's source; return the resolver's tokens.

    Nothing is verified when the render resolves no secrets (``ctx.verify_file`` is None) or
    no enabled resolver handles the files (the objects then stay encrypted). A tampered file
    raises the resolver's error naming it.
    """
    if ctx.verify_file is None or not paths:
        return frozenset()
    tokens: set[str] = set()
    for path in paths:
        fmt = "json" if path.suffix.lower() == ".json" else "yaml"
        tokens.update(ctx.verify_file(app, path.read_bytes(), str(path), fmt) or ())
    return frozenset(tokens)


def decrypt_sources(app: App, ctx: RenderContext, found: tuple[Encrypted, ...]
                    ) -> dict[Path, bytes]:
    """Decrypt each encrypted source in memory; map its path to the plaintext.

    Empty when the render resolves no secrets (``--no-secrets``: generator files stay
    encrypted, an encrypted patch, which cannot be applied so, is a ConfigError). No enabled
    resolver able to decrypt them is a ConfigError naming the file: ciphertext is never
    handed to kustomize as if it were the data.
    """
    if ctx.decrypt_file is None:
        for enc in found:
            if enc.what == "patch":
                raise ConfigError("patch is SOPS-encrypted: it cannot be applied without "
                                  "decrypting it (render with secrets, not --no-secrets)",
                                  source=str(enc.path))
        log.info("%s: secrets not resolved: %d SOPS-encrypted generator source(s) left "
                 "encrypted", app.display_name, len(found))
        return {}
    plain: dict[Path, bytes] = {}
    for enc in found:
        out = ctx.decrypt_file(app, enc.data, str(enc.path), enc.fmt)
        if out is None:
            raise ConfigError(f"{enc.what} is SOPS-encrypted but no enabled secret resolver "
                              "decrypts files (is the secrets_sops plugin disabled by "
                              "KILN_DISABLE_PLUGINS?)", source=str(enc.path))
        if ctx.redactor is not None:
            ctx.redactor.register(out)
        plain[enc.path] = out
    return plain


def private_base(default: Path) -> Path:
    """Where a build tree holding plaintext goes: ``/dev/shm`` (memory) when usable."""
    if SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK):
        return SHM
    return default


def place(target: Path, plain: bytes) -> None:
    """Replace ``target`` (a hard link into the checkout, or a copy) with a new 0600 file.

    The link is swapped for a new inode with ``os.replace``, never written through.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".kiln-plain-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(plain)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
