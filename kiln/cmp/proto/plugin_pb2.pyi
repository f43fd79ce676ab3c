from google.protobuf import empty_pb2 as _empty_pb2
from kiln.cmp.proto import kiln_repository_pb2 as _kiln_repository_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppStreamRequest(_message.Message):
    __slots__ = ("metadata", "file")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    metadata: ManifestRequestMetadata
    file: File
    def __init__(self, metadata: _Optional[_Union[ManifestRequestMetadata, _Mapping]] = ..., file: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class ManifestRequestMetadata(_message.Message):
    __slots__ = ("appName", "appRelPath", "checksum", "size", "env")
    APPNAME_FIELD_NUMBER: _ClassVar[int]
    APPRELPATH_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    appName: str
    appRelPath: str
    checksum: str
    size: int
    env: _containers.RepeatedCompositeFieldContainer[EnvEntry]
    def __init__(self, appName: _Optional[str] = ..., appRelPath: _Optional[str] = ..., checksum: _Optional[str] = ..., size: _Optional[int] = ..., env: _Optional[_Iterable[_Union[EnvEntry, _Mapping]]] = ...) -> None: ...

class EnvEntry(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class ManifestResponse(_message.Message):
    __slots__ = ("manifests", "sourceType")
    MANIFESTS_FIELD_NUMBER: _ClassVar[int]
    SOURCETYPE_FIELD_NUMBER: _ClassVar[int]
    manifests: _containers.RepeatedScalarFieldContainer[str]
    sourceType: str
    def __init__(self, manifests: _Optional[_Iterable[str]] = ..., sourceType: _Optional[str] = ...) -> None: ...

class RepositoryResponse(_message.Message):
    __slots__ = ("isSupported", "isDiscoveryEnabled")
    ISSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    ISDISCOVERYENABLED_FIELD_NUMBER: _ClassVar[int]
    isSupported: bool
    isDiscoveryEnabled: bool
    def __init__(self, isSupported: _Optional[bool] = ..., isDiscoveryEnabled: _Optional[bool] = ...) -> None: ...

class ParametersAnnouncementResponse(_message.Message):
    __slots__ = ("parameterAnnouncements",)
    PARAMETERANNOUNCEMENTS_FIELD_NUMBER: _ClassVar[int]
    parameterAnnouncements: _containers.RepeatedCompositeFieldContainer[_kiln_repository_pb2.ParameterAnnouncement]
    def __init__(self, parameterAnnouncements: _Optional[_Iterable[_Union[_kiln_repository_pb2.ParameterAnnouncement, _Mapping]]] = ...) -> None: ...

class File(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class CheckPluginConfigurationResponse(_message.Message):
    __slots__ = ("isDiscoveryConfigured", "provideGitCreds")
    ISDISCOVERYCONFIGURED_FIELD_NUMBER: _ClassVar[int]
    PROVIDEGITCREDS_FIELD_NUMBER: _ClassVar[int]
    isDiscoveryConfigured: bool
    provideGitCreds: bool
    def __init__(self, isDiscoveryConfigured: _Optional[bool] = ..., provideGitCreds: _Optional[bool] = ...) -> None: ...
