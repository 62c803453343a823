# Only what tests/test_schemas.py uses: protobuf and googleapis-common-protos ship no py.typed.

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

class HttpRequest(Message):
    request_method: str
    request_url: str
    request_size: int
    status: int
    response_size: int
    user_agent: str
    latency: Duration
