# Only what tests/test_schemas.py uses: protobuf and googleapis-common-protos ship no py.typed.

from google.protobuf.message import Message

class Duration(Message):
    seconds: int
    nanos: int
    def ToNanoseconds(self) -> int: ...
