#!/usr/bin/env python3
"""moto's server for the tests, with every request applied atomically.

`moto_server` handles requests on several threads without a lock, so a conditional write
(check, then put) can interleave with another one: under 32 concurrent put-if-absent calls two
may "win", which DynamoDB never allows. This runs the same moto application, but one request at
a time (connections are still served by threads, so keep-alive clients do not block others).

    python infra/moto_serve.py HOST PORT
"""
import os
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # Materialise the body inside the lock: moto's state changes while it is produced.
            return list(app(environ, start_response))

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
