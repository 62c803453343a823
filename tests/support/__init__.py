"""What the tests share: records and lines (``records``, ``lines``), in-process HTTP (``http``), real servers (``servers``)."""
