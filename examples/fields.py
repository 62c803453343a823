import logging
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException

from fapilog import ContextFields, bind_fields, instrument_app


class Shop(ContextFields, propagate=["tenant_id"], keys={"user_id": {"ecs": "user.id", "datadog": "usr.id"}}):
    user_id: str | None = None
    tenant_id: str | None = None


def current_user(authorization: Annotated[str | None, Header()] = None) -> str:  # sync: run in a worker thread
    if authorization is None:  # check the token here
        raise HTTPException(401)
    user_id = authorization.removeprefix("Bearer ")
    bind_fields(Shop(user_id=user_id))  # on every line of the request from here on, its access line too
    return user_id


async def current_tenant(x_tenant_id: Annotated[str, Header()]) -> str:
    bind_fields(Shop(tenant_id=x_tenant_id))
    return x_tenant_id


app = instrument_app(FastAPI())
logger = logging.getLogger("shop")


def send_receipt(order_id: int) -> None:
    logger.info("receipt for order %s sent", order_id)  # a background task: the same user_id and tenant_id


@app.get("/orders/{order_id}", dependencies=[Depends(current_user), Depends(current_tenant)])
async def order(order_id: int, background: BackgroundTasks) -> dict[str, object]:
    logger.info("order %s looked up", order_id)  # ..."user_id":"u-7","tenant_id":"acme"}
    background.add_task(send_receipt, order_id)
    return {"order_id": order_id, **Shop.current().model_dump()}


@app.get("/")
async def home() -> dict[str, object]:
    logger.info("home visited")  # nobody signed in: ..."user_id":null,"tenant_id":null}
    return Shop.current().model_dump()
