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

# fastapi_echo checks that FastAPI and uvicorn are there (exit 3 otherwise) and runs the server.
from fastapi_echo import arguments, serve
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse


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
    parser.add_argument("--file", required=True, help="the PNG to send on every request")
    args = arguments(parser)
    if not os.path.isfile(args.file):
        print(f"fastapi_file: {args.file} is not a file", file=sys.stderr)
        sys.exit(2)
    serve(build_app(args.file), args)


if __name__ == "__main__":
    main()
