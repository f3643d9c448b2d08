"""The reference system's file answer: FastAPI's FileResponse on uvicorn, as TensorOpera Deploy's
image predictors answer (the predictor's file, sent by Starlette's FileResponse).

It answers POST /inference/{endpoint} by reading the JSON body (as a predictor would read its
input) and sending one PNG from a file on every request: the same bytes, from the same kind of
file, as the raw-uws "read per request" baseline, so the two rows compare the servers' file paths.

Usage: /usr/bin/python3 bench/baselines/fastapi_file.py --file PNG [--port N] [--fast]
  default:  uvicorn with the asyncio loop and the h11 HTTP parser (what `pip install uvicorn` gives)
  --fast:   uvloop and httptools (what `pip install uvicorn[standard]` gives)
Prints `listening on http://127.0.0.1:<port>` once the socket is bound (port 0: any free port).
"""
import argparse
import os
import sys

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, PlainTextResponse
except ImportError as err:  # the harness checks this before starting us; say it plainly anyway
    print(f"fastapi_file: {err}", file=sys.stderr)
    sys.exit(3)

from fastapi_echo import AnnouncingServer


def build_app(png: str) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        return PlainTextResponse("ready")

    @app.post("/inference/{endpoint}")
    async def predict(endpoint: str, request: Request) -> FileResponse:
        await request.json()
        return FileResponse(png, media_type="image/png")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--file", required=True, help="the PNG to send on every request")
    parser.add_argument("--fast", action="store_true", help="uvloop + httptools instead of asyncio + h11")
    args = parser.parse_args()
    if not os.path.isfile(args.file):
        print(f"fastapi_file: {args.file} is not a file", file=sys.stderr)
        sys.exit(2)
    config = uvicorn.Config(
        build_app(args.file),
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
