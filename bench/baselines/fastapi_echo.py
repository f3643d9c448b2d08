"""The reference system's architecture: FastAPI on uvicorn, answering the echo, and the stream
the way TensorOpera Deploy streams (an async generator behind a `StreamingResponse`).

  POST /inference/stream {"text", "chunks", "stream": true}   the demo stream's numbered answer
                                                              lines, one `yield` each, chunked
  POST /inference/{endpoint}                                  the JSON body, echoed

Usage: /usr/bin/python3 bench/baselines/fastapi_echo.py [--port N] [--fast]
  default:  uvicorn with the asyncio loop and the h11 HTTP parser (what `pip install uvicorn` gives)
  --fast:   uvloop and httptools (what `pip install uvicorn[standard]` gives)
Prints `listening on http://127.0.0.1:<port>` once the socket is bound (port 0: any free port).
"""
import argparse
import sys

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
except ImportError as err:  # the harness checks this before starting us; say it plainly anyway
    print(f"fastapi_echo: {err}", file=sys.stderr)
    sys.exit(3)

app = FastAPI()


@app.get("/readyz")
async def readyz() -> PlainTextResponse:
    return PlainTextResponse("ready")


MAX_CHUNKS = 1000


async def answer(text: str, chunks: int):
    # One chunk per yield, as a predictor's async generator produces them.
    for i in range(1, chunks + 1):
        yield f"Answer for {text} is: {i}\n\n"


@app.post("/inference/stream")
async def stream(request: Request) -> StreamingResponse:
    body = await request.json()
    text = body.get("text") if isinstance(body.get("text"), str) and body.get("text") else "[Empty question]"
    chunks = body.get("chunks")
    chunks = min(chunks, MAX_CHUNKS) if isinstance(chunks, int) and chunks > 0 else 5
    return StreamingResponse(answer(text, chunks), media_type="text/plain")  # Starlette adds "; charset=utf-8"


@app.post("/inference/{endpoint}")
async def predict(endpoint: str, request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


class AnnouncingServer(uvicorn.Server):
    """Prints the listening line after the sockets are bound, with the port actually bound."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)


def arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options every FastAPI baseline takes (--port, --fast), and the caller's own."""
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="uvloop + httptools instead of asyncio + h11")
    return parser.parse_args()


def serve(application: FastAPI, args: argparse.Namespace) -> None:
    """Runs `application` on uvicorn as --fast says, announcing the bound port."""
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if args.fast else "asyncio",
        http="httptools" if args.fast else "h11",
        access_log=False,
        log_level="warning",
    )
    AnnouncingServer(config).run()


def main() -> None:
    serve(app, arguments(argparse.ArgumentParser()))


if __name__ == "__main__":
    main()
