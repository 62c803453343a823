"""The same small service in each ASGI framework ``tests/test_frameworks.py`` serves, plain and under fapilog.

Every module has ``app`` (the framework's own) and ``traced`` (the setup of
``docs/frameworks.md``: ``TraceIDMiddleware`` around it), with the same routes:

- ``GET /hello``: logs "hello" on logger ``app`` and answers "hello <state>",
  the state lifespan startup set ("ready"; Django has no lifespan: "no lifespan");
- ``GET /stream``: sends "one\\n", then "two\\n" once ``GET /release`` was called;
- ``GET /fail``: raises ``RuntimeError("failed on purpose")``;
- ``WS /ws``: accepts, logs and echoes one text message as "echo: <text>", closes
  with 1000 (Django serves no WebSocket).
"""
