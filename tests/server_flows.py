"""Flows that the server tests start over HTTP and MCP."""

from __future__ import annotations

import logging
import os
from typing import Literal

from pydantic import BaseModel, Field

import kitaru
from kitaru import checkpoint, flow

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


class Opaque:
    """A value only pickle can store: the server must never send it."""

    def __init__(self, secret: str) -> None:
        self.secret = secret


@checkpoint
def shout(text: str) -> str:
    return text.upper()


@checkpoint
def picture() -> bytes:
    kitaru.save("notes", "plain text")
    return PNG


@checkpoint
def opaque() -> Opaque:
    return Opaque("not for the wire")


@checkpoint
def brittle(text: str) -> str:
    print(f"trying {text}")
    logging.getLogger("server_flows").warning("%s is not going to work", text)
    raise ValueError(f"no {text}")


@flow
def breaks(text: str) -> str:
    """A step that fails: the step debugger shows its error and traceback."""
    return brittle(text)


@flow
def echo(text: str, times: int = 1) -> str:
    return " ".join([shout(text)] * times)


@flow
def fan_out(n: int) -> list[str]:
    """Child flows only: each call of ``echo`` is a child execution ``ID.POSITION``."""
    return [echo.run(f"child {i}").wait() for i in range(n)]


@checkpoint
def first_time_fails(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first run fails here")
    return "it works now"


@flow
def flaky(marker: str) -> str:
    """Fails on its first run, completes when retried."""
    return shout("before") + " " + first_time_fails(marker)


@flow
def interview(name: str) -> dict[str, object]:
    """Two questions, one after the other."""
    age = kitaru.wait(schema=int, name="age", question=f"How old is {name}?")
    ok = kitaru.wait(schema=bool, name="hire", question=f"Hire {name}?")
    return {"age": age, "hire": ok}


@flow
def files() -> dict[str, int]:
    data = picture()
    opaque()
    return {"png_bytes": len(data)}


@flow
def approval(n: int) -> dict[str, object]:
    counter = os.environ.get("APPROVAL_COUNTER")
    ok = kitaru.wait(schema=bool, name="ok", question=f"Approve {n}?")
    if counter:
        with open(counter, "a") as f:
            f.write(f"{n}\n")
    return {"n": n, "ok": ok}


class Rating(BaseModel):
    score: int = Field(ge=1, le=5, description="1 (poor) to 5 (great)")
    verdict: Literal["ship", "revise"]
    comment: str = ""


@flow
def rate(item: str) -> dict[str, object]:
    rating = kitaru.wait(
        schema=Rating, name="rating", question=f"How good is {item}?", metadata={"item": item}
    )
    return rating.model_dump()
