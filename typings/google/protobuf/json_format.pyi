# Only what tests/test_schemas.py uses: protobuf and googleapis-common-protos ship no py.typed.

from typing import Any, TypeVar

from google.protobuf.message import Message

_M = TypeVar("_M", bound=Message)

def ParseDict(js_dict: Any, message: _M, ignore_unknown_fields: bool = ...) -> _M: ...
