"""The fork run of tests/test_writer.py: the parent has lines queued when it forks; each process writes its own, once.

``python -m tests.apps.forking PATH`` appends the log lines of every process
to PATH and prints a JSON summary with the children's exit statuses. The
first child ends as a script does (``atexit`` runs), the second as a
``multiprocessing`` child does (``os._exit``, after the threads' shutdown),
with its lines still queued: its formatter takes its time.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import threading
import time

from fapilog import JsonFormatter, configure_logging

PARENT = os.getpid()
holding = threading.Event()
gate = threading.Event()
logger = logging.getLogger("app")


class Held(JsonFormatter):
    """In the parent, hold the writer thread on the line "held" until ``gate`` is set: the lines after it stay queued.

    A ``multiprocessing`` child's lines take 0.1 s each to format.
    """

    def format(self, record: logging.LogRecord) -> str:
        if os.getpid() == PARENT and record.msg == "held":
            holding.set()
            gate.wait()
        if str(record.msg).startswith("multiprocessing child"):
            time.sleep(0.1)  # a slow formatter, not a synchronisation
        return super().format(record)


def multiprocessing_child() -> None:
    for n in range(3):
        logger.info("multiprocessing child %d", n)


def main() -> None:
    stream = open(sys.argv[1], "a", encoding="utf-8")  # noqa: SIM115  # O_APPEND: each process's writes land whole
    handler = configure_logging(stream=stream, enqueue=True)
    handler.setFormatter(Held())
    logger.info("held")
    holding.wait()
    for n in range(5):
        logger.info("parent %d", n)
    child = os.fork()
    if child == 0:
        for n in range(3):
            logger.info("child %d", n)
        sys.exit(0)  # a normal exit: logging.shutdown writes out the child's queue
    _, status = os.waitpid(child, 0)
    gate.set()
    logger.info("parent after")
    process = multiprocessing.get_context("fork").Process(target=multiprocessing_child)
    process.start()
    process.join()
    print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status), "multiprocessing_child_exit": process.exitcode}))


if __name__ == "__main__":
    main()
