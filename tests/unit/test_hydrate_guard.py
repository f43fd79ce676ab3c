"""The secret check before writing: a value the run's redactor knows (raw, base64, multi-line,
in a key, under a field name credential masking also touches) is refused naming the app and
the object, never the value."""

from __future__ import annotations

import base64

import pytest

from kiln.core.redact import Redactor
from kiln.hydrate.guard import SecretInOutput, check_bytes, check_objects

VALUE = "pw-Guard-S3cr3t-5150"
PEM = "-----BEGIN KEY-----\nline-one-Guard\nline-two-Guard\n-----END KEY-----\n"


def redactor(*values: str) -> Redactor:
    out = Redactor()
    out.register_many(values)
    return out


def secret(**fields: object) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "ns"},
            **fields}


@pytest.mark.parametrize("obj", [
    secret(stringData={"password": VALUE}),
    secret(data={"password": base64.b64encode(VALUE.encode()).decode()}),
    secret(stringData={"key.pem": PEM}),
    secret(stringData={f"user-{VALUE}": "x"}),
    secret(stringData={"url": f"postgres://u:{VALUE}@db/x"}),
])
def test_known_values_are_refused_naming_app_and_object(obj: dict[str, object]) -> None:
    with pytest.raises(SecretInOutput) as caught:
        check_objects("apps/db (Application db)",
                      [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, obj],
                      redactor=redactor(VALUE, PEM), resolved=False)
    line = caught.value.one_line()
    assert line.startswith("apps/db (Application db): Secret/ns/db holds a resolved secret")
    assert VALUE not in line and "Guard" not in line


def test_references_and_unknown_values_pass() -> None:
    objects = [secret(stringData={"password": "<path:secret/data/db#password>"})]
    check_objects("a", objects, redactor=redactor(VALUE), resolved=False)
    check_objects("a", objects, redactor=Redactor(), resolved=False)
    check_bytes("a", "a/manifest.yaml", b"password: <path:x#y>\n", redactor=redactor(VALUE))


def test_a_render_that_resolved_secrets_is_refused() -> None:
    with pytest.raises(SecretInOutput, match="secrets were resolved"):
        check_objects("a", [], redactor=None, resolved=True)


def test_bytes_holding_a_value_are_refused() -> None:
    with pytest.raises(SecretInOutput) as caught:
        check_bytes("a", "a/manifest.yaml", f"x: {VALUE}\n".encode(), redactor=redactor(VALUE))
    assert VALUE not in caught.value.one_line()
