from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ParameterAnnouncement(_message.Message):
    __slots__ = ("name", "title", "tooltip", "required", "itemType", "collectionType", "string", "array", "map")
    class MapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TOOLTIP_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ITEMTYPE_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONTYPE_FIELD_NUMBER: _ClassVar[int]
    STRING_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    tooltip: str
    required: bool
    itemType: str
    collectionType: str
    string: str
    array: _containers.RepeatedScalarFieldContainer[str]
    map: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., tooltip: _Optional[str] = ..., required: _Optional[bool] = ..., itemType: _Optional[str] = ..., collectionType: _Optional[str] = ..., string: _Optional[str] = ..., array: _Optional[_Iterable[str]] = ..., map: _Optional[_Mapping[str, str]] = ...) -> None: ...
