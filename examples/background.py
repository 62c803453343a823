import asyncio

import anyio.to_thread

from fapilog import context_copy, get_context


def blocking() -> str | None:
    return get_context()["trace_id"]


async def work() -> str | None:
    return get_context()["trace_id"]


async def in_background() -> tuple[str | None, ...]:
    """Run while a request's context is bound: every idiom sees its trace_id."""
    loop = asyncio.get_running_loop()
    return await asyncio.gather(
        asyncio.create_task(work(), context=context_copy()),  # one snapshot per task...
        loop.run_in_executor(None, context_copy().run, blocking),  # ...and per thread: executors copy nothing
        asyncio.to_thread(blocking),  # copies the current context
        anyio.to_thread.run_sync(blocking),  # copies, like to_thread
    )
