"""A bare ASGI app under uvicorn, served as the services are (shared.serve's settings): the
floor of what one HTTP request costs a Python web service on this machine, with no
framework and no work. bench-events loads it at its rates beside the payment service.

    BARE_PORT=18999 python -m bench.bare_asgi
"""

import os
from typing import Any

import uvicorn

ANSWER = b'{"payment_id":"00000000-0000-0000-0000-000000000000","status":"COMPLETED"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as a service must
        message = await receive()
        more = message.get("more_body", False)
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["BARE_PORT"]),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
