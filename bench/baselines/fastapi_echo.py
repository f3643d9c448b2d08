"""The reference system's architecture: FastAPI on uvicorn, answering the echo.

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
    from fastapi.responses import JSONResponse, PlainTextResponse
except ImportError as err:  # the harness checks this before starting us; say it plainly anyway
    print(f"fastapi_echo: {err}", file=sys.stderr)
    sys.exit(3)

app = FastAPI()


@app.get("/readyz")
async def readyz() -> PlainTextResponse:
    return PlainTextResponse("ready")


@app.post("/inference/{endpoint}")
async def predict(endpoint: str, request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


class AnnouncingServer(uvicorn.Server):
    """Prints the listening line after the sockets are bound, with the port actually bound."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="uvloop + httptools instead of asyncio + h11")
    args = parser.parse_args()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if args.fast else "asyncio",
        http="httptools" if args.fast else "h11",
        access_log=False,
        log_level="warning",
    )
    AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
