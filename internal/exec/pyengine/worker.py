# eventrt pyengine worker: runs one user handler, fn(input, context), for eventrt.
#
# eventrt starts this script as `python3 -u -B -c <bootstrap> eventrt-worker <function>`, the
# bootstrap reading this source from stdin (a short command line for ps), and speaks to it over two pipes
# passed as fd 3 (requests) and fd 4 (responses), so whatever the handler prints on fd 1 and 2
# can never corrupt the protocol; eventrt logs those lines. A frame is a u32 little-endian length
# and a payload.
#
# Handshake: the first request is JSON {"path", "source" (base64, single file) or null, "root",
# "module", "function", "memory_limit", "max_frame", "spin_ns"}; the reply is JSON {"ok": true, "python": ...}
# or {"ok": false, "error": {"file", "line", "column", "message", "snippet", "traceback"}}.
#
# Then each request is one kind byte and a payload:
#   R  marshal v2 (host, port, input_key, output_key, function_getmtime, last_execution,
#      trigger, entry_id, function, input, env): run the handler once.
#   J  re-encode the last run's output and env with json: the fallback for values marshal cannot
#      carry as json.dumps would (float subclasses such as numpy.float64, NaN, sets: json decides).
#   other kinds: the handlers registered in EXTRA_REQUESTS, by source eventrt runs before
#      main() (its benchmarks do; production registers none).
# Replies:
#   O  u32 len(output) + output + env, both marshal v2; len 0 means a falsy output (write nothing)
#   J  u32 len(output) + output + env, both as compact json.dumps
#   H  JSON error: the handler raised
#   X  JSON error: output or env cannot be encoded as JSON, or is too large
#   M  JSON error: MemoryError; the worker is then killed and restarted by eventrt
# Marshal version 2 is used because it has no back-references, so eventrt's decoder stays small.
#
# With "shm" in the handshake ({"header", "slot", "words": {name: offset}, "in_pipe"}; amd64
# only), every message after the handshake travels through a shared region (fd 5) instead: see
# ShmChannel and shm.go, which defines the layout. fd 6 is
# the worker's doorbell (eventrt rings it when the worker may be asleep), fd 7 eventrt's.

import _thread
import base64
import datetime
import faulthandler
import importlib
import json
import linecache
import marshal
import math
import mmap
import os
import select
import sys
import time
import traceback
import types

REQ_FD, RESP_FD = 3, 4
SHM_FD, BELL_IN_FD, BELL_OUT_FD = 5, 6, 7
WORKER_FILE = "<string>"  # the filename of this script's frames, as started with -c


class Context:
    """The `context` the course runtime passed to handler(input, context).

    One instance lives as long as the worker, so attributes a handler adds survive between runs,
    as they did in the course runtime, until the worker restarts. env is replaced before each run
    by the state eventrt keeps, and read back after it."""

    def __init__(self):
        self.host = None
        self.port = None
        self.input_key = None
        self.output_key = None
        self.function_getmtime = None
        self.last_execution = None
        self.env = {}
        self.trigger = None
        self.entry_id = None
        self.function = None

    def __repr__(self):
        return "Context(%s)" % ", ".join(
            "%s=%r" % (k, v) for k, v in self.__dict__.items() if k != "env")


class OutputError(Exception):
    """The handler's output or env cannot be encoded as JSON."""


class FrameReader:
    """Reads request frames from fd. With spin_ns > 0 it polls the pipe for that long after each
    frame before it sleeps in poll(): eventrt sends the next request within microseconds when
    runs come back to back (a stream batch), and a sleeping process's wakeup costs about as much
    again as the whole round trip on a virtual machine."""

    def __init__(self, fd, spin_ns=0):
        self.fd = fd
        self.buf = bytearray()
        self.spin_ns = spin_ns
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def fill(self):
        if self.spin_ns:
            poll, deadline, now = self.poller.poll, time.perf_counter_ns() + self.spin_ns, time.perf_counter_ns
            while not poll(0) and now() < deadline:
                pass
        chunk = os.read(self.fd, 1 << 16)  # blocks when spinning gave up
        self.buf += chunk
        return bool(chunk)

    def read_frame(self):
        buf = self.buf
        while len(buf) < 4:
            if not self.fill():
                return None
        n = int.from_bytes(buf[:4], "little")
        while len(buf) < 4 + n:
            if not self.fill():
                return None
        body = bytes(buf[4:4 + n])
        del buf[:4 + n]
        return body


def write_frame(data):
    view = memoryview(len(data).to_bytes(4, "little") + data)
    while view:
        view = view[os.write(RESP_FD, view):]


class ShmChannel:
    """The worker's end of the shared-memory channel (shm.go has the whole design).

    A message is published by copying it into the sender's slot, then storing its length and a
    new sequence number; the receiver polls the number for spin_ns, then sleeps on its doorbell
    after clearing its awake flag. A sender rings the doorbell only when that flag is clear.
    CPython has no memory barriers: taking and releasing a lock (a LOCK-prefixed instruction on
    amd64) stands in for one where the protocol needs a store to be visible before a load."""

    def __init__(self, rd, layout, spin_ns):
        self.rd = rd
        self.spin_ns = spin_ns
        header, slot = int(layout["header"]), int(layout["slot"])
        self.in_pipe = int(layout["in_pipe"])
        self.map = mmap.mmap(SHM_FD, header + 2 * slot)
        os.close(SHM_FD)
        mv = memoryview(self.map)
        words = {name: mv[int(off):int(off) + 8].cast("Q") for name, off in layout["words"].items()}
        self.req_seq, self.req_len, self.py_awake = words["req_seq"], words["req_len"], words["py_awake"]
        self.rep_seq, self.rep_len, self.go_awake = words["rep_seq"], words["rep_len"], words["go_awake"]
        self.req_taken = words["req_taken"]
        self.req = mv[header:header + slot]
        self.rep = mv[header + slot:header + 2 * slot]
        self.slot = slot
        self.seen = 0  # the last request's sequence number
        self.sent = 0  # the last reply's
        self.lock = _thread.allocate_lock()
        self.poller = select.poll()
        self.poller.register(BELL_IN_FD, select.POLLIN)

    def fence(self):
        lock = self.lock
        lock.acquire()
        lock.release()

    def read_frame(self):
        seq, seen = self.req_seq, self.seen
        if seq[0] == seen and self.spin_ns:
            now = time.perf_counter_ns
            start = now()
            deadline, pure = start + self.spin_ns, start + 2000
            while seq[0] == seen and now() < pure:
                pass
            # Then poll between yields, so as not to hold a core eventrt or Redis may need.
            yld = os.sched_yield
            while seq[0] == seen and now() < deadline:
                yld()
        while seq[0] == seen:
            self.py_awake[0] = 0
            self.fence()  # the flag must be visible before the number is read again
            if seq[0] != seen:
                break
            self.poller.poll()
            if not os.read(BELL_IN_FD, 4096):
                return None  # eventrt closed the doorbell: stop
        self.py_awake[0] = 1
        self.seen = self.req_taken[0] = seq[0]
        n = self.req_len[0]
        if n == self.in_pipe:
            return self.rd.read_frame()
        return bytes(self.req[:n])

    def write_frame(self, data):
        n = len(data)
        big = n > self.slot
        if big:
            self.rep_len[0] = self.in_pipe
        else:
            self.rep[:n] = data
            self.rep_len[0] = n
        self.fence()  # the message before its number
        self.sent += 1
        self.rep_seq[0] = self.sent
        self.fence()  # the number before eventrt's awake flag is read
        if self.go_awake[0] == 0:
            try:
                os.write(BELL_OUT_FD, b"\0")
            except BlockingIOError:
                pass  # a full doorbell pipe rings as well as one more byte would
        if big:
            write_frame(data)


def json_frame(kind, obj):
    return kind + json.dumps(obj).encode()


def user_frame(tb, roots, strict=False):
    """The innermost traceback frame in the user's files, else (unless strict) the innermost
    one outside this worker."""
    best = last = None
    for frame, lineno in traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if name == WORKER_FILE:
            continue
        last = (name, lineno, frame.f_code.co_name)
        if any(name == r or name.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            best = last
    return best if strict else best or last


def display(path, roots):
    for r in roots:
        if os.path.isdir(r) and path.startswith(r.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, r)
    return path


def error_info(e, roots):
    """A one-line description of exception e with the user's file:line, and the traceback
    without this worker's frames."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == WORKER_FILE:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(e), e, tb))
    detail = str(e)
    message = type(e).__name__ + (": " + detail if detail else "")
    where = user_frame(tb, roots)
    info = {"message": message, "traceback": text}
    if where:
        info.update(file=display(where[0], roots), line=where[1], function=where[2])
        info["message"] = "%s (%s:%d in %s)" % (message, info["file"], where[1], where[2])
    return info


def offender(x, path, seen=None):
    """The first value under x that json.dumps(allow_nan=False) rejects, as (path, problem)."""
    if isinstance(x, str) or x is None or x is True or x is False or isinstance(x, int):
        return None
    if isinstance(x, float):
        return None if math.isfinite(x) else (path, "%r is not JSON compliant" % x)
    if seen is None:
        seen = set()
    if id(x) in seen:
        return (path, "circular reference")
    if isinstance(x, dict):
        seen.add(id(x))
        for k, v in x.items():
            sub = "%s[%s]" % (path, json.dumps(k) if isinstance(k, str) else repr(k))
            if not (isinstance(k, (str, int, float)) or k is None):
                return (sub, "key of type %s: keys must be str, int, float, bool or None"
                        % type(k).__name__)
            if isinstance(k, float) and not math.isfinite(k):
                return (sub, "key %r is not JSON compliant" % k)
            found = offender(v, sub, seen)
            if found:
                return found
        seen.discard(id(x))
        return None
    if isinstance(x, (list, tuple)):
        seen.add(id(x))
        for i, v in enumerate(x):
            found = offender(v, "%s[%d]" % (path, i), seen)
            if found:
                return found
        seen.discard(id(x))
        return None
    return (path, "%s is not JSON serializable" % type(x).__name__)


def json_dumps(x, path, **kw):
    try:
        return json.dumps(x, allow_nan=False, **kw).encode()
    except (TypeError, ValueError, RecursionError) as e:
        try:
            found = offender(x, path)
        except RecursionError:
            found = None
        if found:
            raise OutputError("%s: %s" % found) from None
        raise OutputError("%s: %s" % (path, e)) from None


def check_env(env):
    if not isinstance(env, dict):
        raise OutputError("context.env must be a dict, not %s" % type(env).__name__)
    for k in env:
        if not isinstance(k, str):
            raise OutputError("context.env key %r is a %s: state keys must be strings"
                              % (k, type(k).__name__))


def encode_json(out, env):
    check_env(env)
    oj = json_dumps(out, "output", separators=(",", ":")) if out else b""
    ej = json_dumps(env, "context.env", separators=(",", ":"))
    return b"J" + len(oj).to_bytes(4, "little") + oj + ej


def load(init):
    """Imports the user's module and returns the handler function."""
    path, root, module, function = init["path"], init["root"], init["module"], init["function"]
    # Running with -c put the working directory first on sys.path: the handler's own directory
    # or bundle takes its place, as `python3 file.py` would do.
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    sys.path.insert(0, root)
    sys.argv[:] = [path]
    if init.get("source") is not None:
        # A single file is compiled from the copy eventrt read at start, so a restarted worker
        # runs the same version as the one eventrt hashed, whatever is on disk by then.
        source = base64.b64decode(init["source"])
        mod = types.ModuleType(module)
        mod.__file__ = path
        sys.modules[module] = mod
        try:
            text = source.decode("utf-8")
            linecache.cache[path] = (len(text), None, text.splitlines(True), path)
        except UnicodeDecodeError:
            pass
        exec(compile(source, path, "exec"), mod.__dict__)
    else:
        mod = importlib.import_module(module)
    fn = getattr(mod, function, None)
    if not callable(fn):
        names = sorted(k for k, v in vars(mod).items()
                       if callable(v) and not k.startswith("_") and not isinstance(v, type)
                       and getattr(v, "__module__", None) == mod.__name__)
        label = os.path.basename(path) if init.get("source") is not None else module
        raise LookupError("%s has no function %s (it defines: %s)"
                          % (label, function, ", ".join(names) or "no functions"))
    return fn


def import_error(e, init):
    roots = [init["root"], init["path"]]
    if isinstance(e, SyntaxError):
        return {"file": display(e.filename or init["path"], roots), "line": e.lineno or 0,
                "column": e.offset or 0, "message": "%s: %s" % (type(e).__name__, e.msg),
                "snippet": (e.text or "").strip(), "traceback": ""}
    info = error_info(e, roots)
    detail = str(e)
    out = {"file": display(init["path"], roots), "line": 0, "column": 0, "snippet": "",
           "message": type(e).__name__ + (": " + detail if detail else ""),
           "traceback": info["traceback"]}
    where = user_frame(e.__traceback__, roots, strict=True)
    if where:
        out.update(file=display(where[0], roots), line=where[1],
                   snippet=linecache.getline(where[0], where[1]).strip())
    return out


# EXTRA_REQUESTS maps a request kind to a function(fn, ctx, payload) returning the reply frame:
# kinds beyond the protocol's own, which only eventrt's benchmarks register.
EXTRA_REQUESTS = {}


def serve(rd, send, fn, ctx, roots, max_frame):
    loads, dumps = marshal.loads, marshal.dumps
    fromts = datetime.datetime.fromtimestamp
    last = (None, None)
    while True:
        payload = rd.read_frame()
        if payload is None:
            return
        kind = payload[:1]
        try:
            if kind == b"R":
                last = (None, None)
                (ctx.host, ctx.port, ctx.input_key, ctx.output_key, ctx.function_getmtime, ts,
                 ctx.trigger, ctx.entry_id, ctx.function, inp, env) = loads(memoryview(payload)[1:])
                ctx.last_execution = None if ts is None else fromts(ts)
                ctx.env = env
                out = fn(inp, ctx)
                env = ctx.env
                last = (out, env)
                try:
                    if type(env) is not dict:
                        raise ValueError
                    om = dumps(out, 2) if out else b""
                    reply = b"O" + len(om).to_bytes(4, "little") + om + dumps(env, 2)
                except ValueError:  # unmarshallable: a subclass or a non-JSON type
                    reply = encode_json(out, env)
            elif kind == b"J":
                reply = encode_json(*last)
            elif kind in EXTRA_REQUESTS:
                reply = EXTRA_REQUESTS[kind](fn, ctx, memoryview(payload)[1:])
            else:
                raise RuntimeError("unknown request kind %r" % kind)
            if len(reply) > max_frame:
                raise OutputError("output and env encode to %d bytes, more than the %d-byte limit"
                                  % (len(reply), max_frame))
        except OutputError as e:
            reply = json_frame(b"X", {"message": str(e)})
        except MemoryError as e:
            last = (None, None)
            e.__traceback__ = None
            reply = json_frame(b"M", {"message": "MemoryError: the handler ran out of memory"})
        except BaseException as e:  # SystemExit and KeyboardInterrupt included: the run fails
            reply = json_frame(b"H", error_info(e, roots))
        send(reply)


def main():
    os.set_inheritable(REQ_FD, False)
    os.set_inheritable(RESP_FD, False)
    faulthandler.enable()  # a segfault in an extension prints its Python stack into the log
    rd = FrameReader(REQ_FD)
    raw = rd.read_frame()
    if raw is None:
        return
    init = json.loads(raw)
    rd.spin_ns = int(init.get("spin_ns") or 0)
    ch = None
    if init.get("shm"):
        for fd in (SHM_FD, BELL_IN_FD, BELL_OUT_FD):
            os.set_inheritable(fd, False)
        os.set_blocking(BELL_OUT_FD, False)
        ch = ShmChannel(rd, init["shm"], rd.spin_ns)
    if init.get("memory_limit"):
        import resource
        limit = int(init["memory_limit"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        fn = load(init)
    except BaseException as e:
        write_frame(json.dumps({"ok": False, "error": import_error(e, init)}).encode())
        return
    write_frame(json.dumps({"ok": True, "python": sys.version.split()[0],
                            "pid": os.getpid()}).encode())
    roots, max_frame = [init["root"], init["path"]], int(init["max_frame"])
    if ch:
        serve(ch, ch.write_frame, fn, Context(), roots, max_frame)
    else:
        serve(rd, write_frame, fn, Context(), roots, max_frame)


main()
