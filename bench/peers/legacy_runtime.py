#!/usr/bin/env python3
"""eventrt's stand-in for the course runtime it replaces (the lucasmsp/serverless:redis image),
run by `make bench` as the legacy row's peer.

Every INTERVAL seconds it GETs REDIS_INPUT_KEY; when the key holds a value, it calls
handler(input, context) from the file USERMODULE with the decoded JSON and SETs the JSON of a
truthy result on REDIS_OUTPUT_KEY. context.env lives in this process only, as in the course
image: a restart forgets it.

Settings (environment): REDIS_HOST (localhost), REDIS_PORT (6379), REDIS_INPUT_KEY (metrics),
REDIS_OUTPUT_KEY, INTERVAL (5 seconds), USERMODULE (/opt/usermodule.py). It needs the redis
client module: on Debian, apt-get install python3-redis and run it with /usr/bin/python3.
"""
import datetime
import importlib.util
import json
import os
import time

import redis


def load_handler(path):
    spec = importlib.util.spec_from_file_location("usermodule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


class Context:
    """The second argument of the handler: where it runs, and env, its memory between calls."""

    def __init__(self, host, port, input_key, output_key, module_path):
        self.host, self.port = host, port
        self.input_key, self.output_key = input_key, output_key
        self.module_path = module_path
        self.function_getmtime = None
        self.last_execution = None
        self.env = {}

    def before_call(self):
        mtime = os.path.getmtime(self.module_path)
        self.function_getmtime = datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")


def main():
    host = os.environ.get("REDIS_HOST", "localhost")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    input_key = os.environ.get("REDIS_INPUT_KEY", "metrics")
    output_key = os.environ.get("REDIS_OUTPUT_KEY")
    interval = float(os.environ.get("INTERVAL", "5"))
    module_path = os.environ.get("USERMODULE", "/opt/usermodule.py")

    handler = load_handler(module_path)
    context = Context(host, port, input_key, output_key, module_path)
    client = redis.Redis(host=host, port=port, decode_responses=True)
    while True:
        raw = client.get(input_key)
        if raw is not None:
            context.before_call()
            result = handler(json.loads(raw), context)
            if result and output_key:
                client.set(output_key, json.dumps(result))
            context.last_execution = datetime.datetime.now()
        time.sleep(interval)


if __name__ == "__main__":
    main()
