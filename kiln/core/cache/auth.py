"""The operator's cache authentication key, read from kiln's own environment only.

``KILN_CACHE_HMAC_KEY`` holds the key itself; ``KILN_CACHE_HMAC_KEY_FILE`` names a file holding
it (a mounted Kubernetes Secret; surrounding whitespace is ignored). Only the process
environment the operator controls is read: never kiln.yaml, never ``ARGOCD_ENV_*`` (an app could
otherwise choose the key its own forged entries are checked against).
"""

from __future__ import annotations

from collections.abc import Mapping

from kiln.core.errors import ConfigError

KEY_ENV = "KILN_CACHE_HMAC_KEY"
FILE_ENV = "KILN_CACHE_HMAC_KEY_FILE"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096


def mac_key_from_env(env: Mapping[str, str]) -> bytes | None:
    """The operator's HMAC key as bytes, or None when neither variable is set (or both empty).

    Raises ConfigError (naming the variable, never the key) when both are set, the file cannot
    be read, or the key is shorter than 16 bytes.
    """
    value = env.get(KEY_ENV, "")
    path = env.get(FILE_ENV, "")
    if value and path:
        raise ConfigError(f"set only one of {KEY_ENV} and {FILE_ENV}")
    if path:
        try:
            with open(path, "rb") as handle:
                key = handle.read(MAX_KEY_BYTES + 1).strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the cache HMAC key: {exc.strerror}",
                              source=f"{FILE_ENV}={path}") from None
        if len(key) > MAX_KEY_BYTES:
            raise ConfigError(f"the cache HMAC key is over {MAX_KEY_BYTES} bytes",
                              source=f"{FILE_ENV}={path}")
        where = f"{FILE_ENV}={path}"
    elif value:
        key = value.encode()
        where = KEY_ENV
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the cache HMAC key is shorter than {MIN_KEY_BYTES} bytes "
                          "(use e.g. `openssl rand -hex 32`)", source=where)
    return key
