"""The CMP v2 stubs: the committed files are what ``generate.sh`` produces, and their wire format
has Argo CD's field numbers (reference apply-and-serve.md §1.1), checked by a protobuf decoder
written here (an oracle independent of the protobuf runtime)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf import empty_pb2

from kiln.cmp.proto import kiln_repository_pb2, plugin_pb2, plugin_pb2_grpc
from tests.helpers import REPO

PROTO_DIR = REPO / "kiln" / "cmp" / "proto"
GENERATED = ("plugin_pb2.py", "plugin_pb2.pyi", "plugin_pb2_grpc.py",
             "kiln_repository_pb2.py", "kiln_repository_pb2.pyi")

VARINT, I64, LEN, I32 = 0, 1, 2, 5


# -- a minimal protobuf wire decoder -------------------------------------------------------------

def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Decode one message level into (field number, wire type, value) in wire order: varints
    as ints, length-delimited as bytes."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, i = _varint(data, i)
        elif wire == LEN:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == I64:
            value, i = data[i:i + 8], i + 8
        elif wire == I32:
            value, i = data[i:i + 4], i + 4
        else:  # pragma: no cover - groups are not used by proto3
            raise AssertionError(f"wire type {wire}")
        out.append((number, wire, value))
    return out


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def enc(number: int, value: int | bytes | str) -> bytes:
    """Encode one field by hand: ints as varints, bytes/str as length-delimited."""
    if isinstance(value, int):
        return _enc_varint(number << 3 | VARINT) + _enc_varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _enc_varint(number << 3 | LEN) + _enc_varint(len(raw)) + raw


# -- regeneration --------------------------------------------------------------------------------

def test_regenerated_stubs_are_byte_identical(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(PROTO_DIR / "generate.sh"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "kiln" / "cmp" / "proto"
    produced = sorted(p.name for p in out.iterdir())
    assert produced == sorted(GENERATED), produced
    for name in GENERATED:
        assert (out / name).read_bytes() == (PROTO_DIR / name).read_bytes(), (
            f"kiln/cmp/proto/{name} is stale: run kiln/cmp/proto/generate.sh")


# -- the service ---------------------------------------------------------------------------------

class _RecordingChannel:
    """Stands in for a grpc.Channel to record which paths and kinds the stub registers."""

    def __init__(self) -> None:
        self.calls: dict[str, str] = {}

    def stream_unary(self, path: str, **_: Any) -> None:
        self.calls[path] = "stream_unary"

    def unary_unary(self, path: str, **_: Any) -> None:
        self.calls[path] = "unary_unary"


def test_stub_method_paths_and_kinds() -> None:
    channel = _RecordingChannel()
    plugin_pb2_grpc.ConfigManagementPluginServiceStub(channel)
    prefix = "/plugin.ConfigManagementPluginService/"
    assert channel.calls == {
        prefix + "GenerateManifest": "stream_unary",
        prefix + "MatchRepository": "stream_unary",
        prefix + "GetParametersAnnouncement": "stream_unary",
        prefix + "CheckPluginConfiguration": "unary_unary",
    }
    service = plugin_pb2.DESCRIPTOR.services_by_name["ConfigManagementPluginService"]
    assert service.full_name == "plugin.ConfigManagementPluginService"
    inputs = {m.name: m.input_type.full_name for m in service.methods}
    assert inputs == {"GenerateManifest": "plugin.AppStreamRequest",
                      "MatchRepository": "plugin.AppStreamRequest",
                      "GetParametersAnnouncement": "plugin.AppStreamRequest",
                      "CheckPluginConfiguration": "google.protobuf.Empty"}
    assert kiln_repository_pb2.DESCRIPTOR.package == "repository"


# -- wire format ---------------------------------------------------------------------------------

def test_metadata_message_field_numbers() -> None:
    msg = plugin_pb2.AppStreamRequest(metadata=plugin_pb2.ManifestRequestMetadata(
        appName="web", appRelPath="apps/web", checksum="ab" * 32, size=300_000_000_000,
        env=[plugin_pb2.EnvEntry(name="ARGOCD_APP_NAME", value="web"),
             plugin_pb2.EnvEntry(name="KUBE_VERSION", value="1.31.0")]))
    [(number, wire, inner)] = fields(msg.SerializeToString())
    assert (number, wire) == (1, LEN)  # oneof request: metadata = 1
    got = fields(inner)
    assert got[:4] == [(1, LEN, b"web"), (2, LEN, b"apps/web"), (3, LEN, b"ab" * 32),
                       (4, VARINT, 300_000_000_000)]  # size: int64 beyond 32 bits
    envs = [fields(v) for n, w, v in got[4:]]
    assert [n for n, _, _ in got[4:]] == [5, 5]
    assert envs == [[(1, LEN, b"ARGOCD_APP_NAME"), (2, LEN, b"web")],
                    [(1, LEN, b"KUBE_VERSION"), (2, LEN, b"1.31.0")]]


def test_file_chunk_field_numbers() -> None:
    chunk = bytes(range(256)) * 5
    msg = plugin_pb2.AppStreamRequest(file=plugin_pb2.File(chunk=chunk))
    assert fields(msg.SerializeToString()) == [(2, LEN, enc(1, chunk))]


def test_hand_encoded_requests_decode_with_the_stubs() -> None:
    meta = enc(1, "guestbook") + enc(2, "apps/guestbook") + enc(3, "00ff") + enc(4, 1234) + \
        enc(5, enc(1, "ARGOCD_ENV_X") + enc(2, "y"))
    decoded = plugin_pb2.AppStreamRequest.FromString(enc(1, meta))
    assert decoded.WhichOneof("request") == "metadata"
    m = decoded.metadata
    assert (m.appName, m.appRelPath, m.checksum, m.size) == ("guestbook", "apps/guestbook",
                                                             "00ff", 1234)
    assert [(e.name, e.value) for e in m.env] == [("ARGOCD_ENV_X", "y")]
    decoded = plugin_pb2.AppStreamRequest.FromString(enc(2, enc(1, b"\x1f\x8b")))
    assert decoded.WhichOneof("request") == "file"
    assert decoded.file.chunk == b"\x1f\x8b"


def test_response_field_numbers() -> None:
    manifests = plugin_pb2.ManifestResponse(manifests=['{"kind":"A"}', '{"kind":"B"}'],
                                            sourceType="Plugin")
    assert fields(manifests.SerializeToString()) == [
        (1, LEN, b'{"kind":"A"}'), (1, LEN, b'{"kind":"B"}'), (2, LEN, b"Plugin")]
    repo = plugin_pb2.RepositoryResponse(isSupported=True, isDiscoveryEnabled=True)
    assert fields(repo.SerializeToString()) == [(1, VARINT, 1), (2, VARINT, 1)]
    assert fields(plugin_pb2.RepositoryResponse(isDiscoveryEnabled=True)
                  .SerializeToString()) == [(2, VARINT, 1)]
    check = plugin_pb2.CheckPluginConfigurationResponse(isDiscoveryConfigured=True,
                                                        provideGitCreds=True)
    assert fields(check.SerializeToString()) == [(1, VARINT, 1), (2, VARINT, 1)]
    assert fields(empty_pb2.Empty().SerializeToString()) == []


def test_parameter_announcement_field_numbers() -> None:
    ann = kiln_repository_pb2.ParameterAnnouncement(
        name="helm-parameters", title="T", tooltip="tip", required=True, itemType="string",
        collectionType="map", string="s", array=["a", "b"], map={"image.tag": "v1"})
    resp = plugin_pb2.ParametersAnnouncementResponse(parameterAnnouncements=[ann, ann])
    outer = fields(resp.SerializeToString())
    assert [(n, w) for n, w, _ in outer] == [(1, LEN), (1, LEN)]
    got = fields(outer[0][2])
    assert got == [(1, LEN, b"helm-parameters"), (2, LEN, b"T"), (3, LEN, b"tip"),
                   (4, VARINT, 1), (5, LEN, b"string"), (6, LEN, b"map"), (7, LEN, b"s"),
                   (8, LEN, b"a"), (8, LEN, b"b"),
                   (9, LEN, enc(1, "image.tag") + enc(2, "v1"))]  # map entry {key=1, value=2}
