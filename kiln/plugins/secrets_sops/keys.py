"""Key material, and unwrapping a document's data key in-process (age, AWS KMS).

age identities come from ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE``, sops' default keys file
(``$XDG_CONFIG_HOME/sops/age/keys.txt``), the ``secrets.sops`` options (``ageKeys``,
``ageKeyFile``) and a Kubernetes Secret manifest shaped like Flux's ``spec.decryption.secretRef``
(``*.agekey`` entries; ``sops.aws-kms``, ``sops.vault-token``, ``sops.gcp-kms`` and
``sops.azure-kv`` credentials). AWS KMS data keys are
unwrapped with boto3 and the standard AWS credential chain (``AWS_ENDPOINT_URL[_KMS]`` honoured).
Every other key type is left to the sops binary.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.core.errors import ConfigError
from kiln.core.trust import Allowlist, Guard, Level, Origin, check
from kiln.plugins.secrets_sops.tree import MasterKey, Metadata

log = logging.getLogger("kiln.sops")

AGE_SECRET_PREFIX = "AGE-SECRET-KEY-"
KEY_FILE_MAX_BYTES = 1 << 20


@dataclass
class KeyRing:
    """The key material one resolver run may use. Holds private keys: never log or cache it."""

    age_identities: list[str] = field(default_factory=list, repr=False)
    aws_credentials: dict[str, str] = field(default_factory=dict, repr=False)
    tool_env: dict[str, str] = field(default_factory=dict, repr=False)
    """Credentials only the sops binary uses (Vault token, GCP and Azure credentials)."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    _parsed_age: list[Any] | None = field(default=None, repr=False)
    _data_keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    def parsed_age(self) -> list[Any]:
        """The age identities as pyrage objects (parsed once)."""
        if self._parsed_age is None:
            import pyrage

            parsed = []
            for text in self.age_identities:
                try:
                    parsed.append(pyrage.x25519.Identity.from_str(text))
                except Exception:  # noqa: BLE001 - pyrage raises its own IdentityError types
                    log.warning("ignoring an age identity that does not parse")
            self._parsed_age = parsed
        return self._parsed_age

    def sops_env(self) -> dict[str, str]:
        """The environment for a sops subprocess: ours, plus our age identities."""
        env = dict(self.env)
        env["SOPS_DISABLE_VERSION_CHECK"] = "1"
        if self.age_identities:
            env["SOPS_AGE_KEY"] = "\n".join(self.age_identities)
            env.pop("SOPS_AGE_KEY_FILE", None)
        env.update(self.aws_credentials)
        env.update(self.tool_env)
        return env


def age_identities_in(text: str) -> list[str]:
    """Every ``AGE-SECRET-KEY-...`` line of an age keys text (comments and blanks skipped)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith(AGE_SECRET_PREFIX):
            found.append(line)
    return found


def _read_text(path: Path, what: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(KEY_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from None
    if len(data) > KEY_FILE_MAX_BYTES:
        raise ConfigError(f"{what} is larger than {KEY_FILE_MAX_BYTES} bytes", source=str(path))
    return data.decode("utf-8", "replace")


def load_keyring(env: Mapping[str, str], *, age_keys: Sequence[str] = (),
                 age_key_file: str = "", key_secret_file: str = "",
                 base: Path | None = None) -> KeyRing:
    """Collect every configured key: options first, then the environment, then sops' default."""
    ring = KeyRing(env=env)
    identities: list[str] = []
    for entry in age_keys:
        identities.extend(age_identities_in(entry))
    if age_key_file:
        identities.extend(age_identities_in(_read_text(_resolve(age_key_file, base),
                                                       "secrets.sops.ageKeyFile")))
    if key_secret_file:
        _from_secret_manifest(_resolve(key_secret_file, base), ring, identities)
    if env.get("SOPS_AGE_KEY"):
        identities.extend(age_identities_in(env["SOPS_AGE_KEY"]))
    if env.get("SOPS_AGE_KEY_FILE"):
        identities.extend(age_identities_in(_read_text(Path(env["SOPS_AGE_KEY_FILE"]),
                                                       "SOPS_AGE_KEY_FILE")))
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME", "~"), ".config")
    default = Path(config_home) / "sops" / "age" / "keys.txt"
    if default.is_file():
        identities.extend(age_identities_in(_read_text(default, "sops age keys file")))
    ring.age_identities = list(dict.fromkeys(identities))
    return ring


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() or base is None else base / p


def _from_secret_manifest(path: Path, ring: KeyRing, identities: list[str]) -> None:
    """Read a Secret manifest (Flux ``decryption.secretRef`` shape): ``*.agekey``, AWS creds."""
    from kiln.core.errors import InputError
    from kiln.core.manifests import parse_stream

    try:
        objects = parse_stream(_read_text(path, "secrets.sops.keySecretFile"), str(path))
    except InputError as exc:
        raise ConfigError(exc.message, source=str(path)) from None
    secrets = [o for o in objects if o.get("kind") == "Secret"]
    if not secrets:
        raise ConfigError("holds no Secret (expected Flux's decryption Secret shape)",
                          source=str(path))
    for secret in secrets:
        entries: dict[str, str] = {}
        for name, value in (secret.get("data") or {}).items():
            try:
                entries[name] = base64.b64decode(str(value), validate=True).decode()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise ConfigError(f"data.{name} is not base64 text", source=str(path)) from None
        for name, value in (secret.get("stringData") or {}).items():
            entries[name] = str(value)
        for name, value in entries.items():
            if name.endswith(".agekey"):
                identities.extend(age_identities_in(value))
            elif name == "sops.aws-kms":
                ring.aws_credentials.update(_aws_credentials(value, path))
            elif name == "sops.vault-token":
                ring.tool_env["VAULT_TOKEN"] = value.strip()
            elif name == "sops.gcp-kms":
                ring.tool_env["GOOGLE_CREDENTIALS"] = value
            elif name == "sops.azure-kv":
                ring.tool_env.update(_azure_credentials(value, path))


def _aws_credentials(text: str, path: Path) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or not data.get("aws_access_key_id"):
        raise ConfigError("sops.aws-kms must be YAML with aws_access_key_id and "
                          "aws_secret_access_key", source=str(path))
    creds = {"AWS_ACCESS_KEY_ID": str(data["aws_access_key_id"]),
             "AWS_SECRET_ACCESS_KEY": str(data.get("aws_secret_access_key", ""))}
    if data.get("aws_session_token"):
        creds["AWS_SESSION_TOKEN"] = str(data["aws_session_token"])
    return creds


def _azure_credentials(text: str, path: Path) -> dict[str, str]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError("sops.azure-kv must be JSON or YAML", source=str(path))
    names = {"tenantId": "AZURE_TENANT_ID", "clientId": "AZURE_CLIENT_ID",
             "clientSecret": "AZURE_CLIENT_SECRET", "authorityHost": "AZURE_AUTHORITY_HOST"}
    return {env: str(data[key]) for key, env in names.items() if data.get(key)}


def check_binary_keys(meta: Metadata, env: Mapping[str, str], source: str) -> None:
    """Refuse to hand the sops binary a document (repository input) whose ``hc_vault`` keys
    name another server than the operator's ``VAULT_ADDR``: sops would send the token there.
    The operator may allow ``sops.hc_vault.vault_address``. Raises TrustError naming ``source``.
    """
    operator = env.get("VAULT_ADDR", "").strip().rstrip("/")
    for key in meta.keys:
        if key.type != "hc_vault":
            continue
        address = str(key.fields.get("vault_address") or "").strip().rstrip("/")
        if address != operator:
            check("sops.hc_vault.vault_address", Guard.ROUTE, Origin(Level.REPOSITORY, source),
                  Allowlist.from_env(env))


# -- unwrapping --------------------------------------------------------------------------------

class Unwrapped(Exception):
    """No in-process key worked; ``reasons`` says why per key (no secret material in them)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


IN_PROCESS_TYPES = frozenset({"age", "kms"})


def unwrap_data_key(meta: Metadata, ring: KeyRing) -> bytes:
    """Return the 32-byte data key using age or AWS KMS in-process; raise Unwrapped otherwise.

    Keys are tried in sops' default order (age first). Documents with several key groups
    (Shamir) raise Unwrapped so the sops binary handles them.
    """
    if len(meta.groups) != 1:
        raise Unwrapped(["several key groups (Shamir): left to the sops binary"])
    reasons: list[str] = []
    ordered = sorted(meta.groups[0], key=lambda k: 0 if k.type == "age" else 1)
    for key in ordered:
        cached = ring._data_keys.get(key.enc)
        if cached is not None:
            return cached
        try:
            if key.type == "age":
                data_key = _unwrap_age(key, ring)
            elif key.type == "kms":
                data_key = _unwrap_kms(key, ring)
            else:
                reasons.append(f"{key.type} {key.ident}: needs the sops binary")
                continue
        except _KeyFailed as exc:
            reasons.append(f"{key.type} {key.ident}: {exc}")
            continue
        if len(data_key) != 32:
            reasons.append(f"{key.type} {key.ident}: unwrapped key is not 32 bytes")
            continue
        ring._data_keys[key.enc] = data_key
        return data_key
    raise Unwrapped(reasons)


class _KeyFailed(Exception):
    """One master key could not unwrap the data key."""


def dearmor(text: str) -> bytes:
    """Decode an ASCII-armored age file (``-----BEGIN AGE ENCRYPTED FILE-----``)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 2 or not lines[0].startswith("-----BEGIN AGE ENCRYPTED FILE"):
        return text.encode()
    if not lines[-1].startswith("-----END AGE ENCRYPTED FILE"):
        raise _KeyFailed("malformed armored age data key")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise _KeyFailed("malformed armored age data key") from None


def _unwrap_age(key: MasterKey, ring: KeyRing) -> bytes:
    identities = ring.parsed_age()
    if not identities:
        raise _KeyFailed("no age identity configured")
    import pyrage

    try:
        return bytes(pyrage.decrypt(dearmor(key.enc), identities))
    except pyrage.DecryptError:
        raise _KeyFailed("none of the configured age identities matches") from None


def _unwrap_kms(key: MasterKey, ring: KeyRing) -> bytes:
    fields = key.fields
    arn = str(fields.get("arn") or "")
    parts = arn.split(":")
    if len(parts) < 6 or not parts[3]:
        raise _KeyFailed("malformed KMS ARN")
    region = parts[3]
    try:
        blob = base64.b64decode(key.enc, validate=True)
    except (binascii.Error, ValueError):
        raise _KeyFailed("malformed wrapped data key") from None
    context = fields.get("context") or {}
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise _KeyFailed("boto3 is not installed (pip install boto3)") from None
    env = {**ring.env, **ring.aws_credentials}
    try:
        session = boto3.session.Session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            profile_name=str(fields.get("aws_profile") or "") or None,
            region_name=region,
        )
        endpoint = env.get("AWS_ENDPOINT_URL_KMS") or env.get("AWS_ENDPOINT_URL") or None
        if fields.get("role"):
            sts = session.client("sts", endpoint_url=env.get("AWS_ENDPOINT_URL_STS")
                                 or env.get("AWS_ENDPOINT_URL") or None)
            creds = sts.assume_role(RoleArn=str(fields["role"]),
                                    RoleSessionName="kiln-sops")["Credentials"]
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"], region_name=region)
        client = session.client("kms", endpoint_url=endpoint)
        kwargs: dict[str, Any] = {"CiphertextBlob": blob, "KeyId": arn}
        if context:
            kwargs["EncryptionContext"] = {str(k): str(v) for k, v in context.items()}
        answer = client.decrypt(**kwargs)
    except botocore.exceptions.BotoCoreError as exc:
        raise _KeyFailed(f"AWS KMS unreachable or no credentials ({type(exc).__name__})") \
            from None
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise _KeyFailed(f"AWS KMS refused: {code}") from None
    return bytes(answer["Plaintext"])
