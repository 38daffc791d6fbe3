"""The references tarhold is measured against, serving the same bytes.

- bare aiohttp: `python -m bench.reference --port N --root DIR` holds every
  file under DIR in memory and answers GET /<path> with it (`web.Response`),
  and with `--files` answers from disk with `web.FileResponse` instead. A
  file named `*.gz` holds bytes already gzipped (as tarhold sent them): it is
  answered as they are, with `Content-Encoding: gzip` and the type of the
  name without `.gz`;
- nginx: `nginx_config()` for one worker serving DIR on 127.0.0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiohttp import web

CONTENT_TYPES = {".json": "application/json", ".tgz": "application/octet-stream"}


def response_headers(path: Path) -> dict[str, str]:
    """Content-Type by the file's suffix; a `.gz` file is that of the name without it, gzip-encoded."""
    if path.suffix == ".gz":
        return {**response_headers(path.with_suffix("")), "Content-Encoding": "gzip"}
    return {"Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream")}


def build_app(root: Path, *, from_files: bool) -> web.Application:
    files = {"/" + str(path.relative_to(root)): path for path in root.rglob("*") if path.is_file()}
    bodies = {} if from_files else {key: path.read_bytes() for key, path in files.items()}
    # Plain headers, as tarhold sets them (cheaper than aiohttp's content_type setter);
    # no enable_compression(): the bytes go out as stored.
    headers = {key: response_headers(path) for key, path in files.items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path not in files:
            raise web.HTTPNotFound()
        if from_files:
            return web.FileResponse(files[path])
        return web.Response(body=bodies[path], headers=headers[path])

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def nginx_config(root: Path, port: int, workdir: Path) -> str:
    """One worker (tarhold runs one process by default), sendfile, no access log."""
    return f"""\
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
user root;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    types {{ application/octet-stream tgz; application/json json; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--files", action="store_true", help="FileResponse from disk, not bytes in memory")
    args = parser.parse_args(argv)
    web.run_app(build_app(args.root, from_files=args.files), host="127.0.0.1", port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
