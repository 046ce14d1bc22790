# Requests of eventrt's benchmarks, which the production worker does not know: eventrt's tests
# run this in the worker (Options.workerExtension) before it serves. It runs in the worker's
# namespace: marshal, json, time, datetime and json_frame are the worker's.
#
#   B  marshal v2 (n, input_json, env, <the nine context fields>): time the handler called
#      directly, n times, alone and with json.loads/json.dumps around it; reply B + JSON timings.
#   P  ping: replied to with P (the bare round trip).


def bench(fn, ctx, payload):
    (n, raw, env, ctx.host, ctx.port, ctx.input_key, ctx.output_key, ctx.function_getmtime,
     last, ctx.trigger, ctx.entry_id, ctx.function) = marshal.loads(payload)
    ctx.last_execution = None if last is None else datetime.datetime.fromtimestamp(last)
    ctx.env = env
    inp = json.loads(raw)
    perf, cpu = time.perf_counter_ns, time.process_time_ns
    t0, c0 = perf(), cpu()
    for _ in range(n):
        fn(inp, ctx)
    t1, c1 = perf(), cpu()
    loads, dumps = json.loads, json.dumps
    for _ in range(n):
        dumps(fn(loads(raw), ctx))
    t2, c2 = perf(), cpu()
    return {"handler_ns": (t1 - t0) / n, "with_json_ns": (t2 - t1) / n,
            "handler_cpu_ns": (c1 - c0) / n, "with_json_cpu_ns": (c2 - c1) / n}


EXTRA_REQUESTS[b"B"] = lambda fn, ctx, payload: json_frame(b"B", bench(fn, ctx, payload))
EXTRA_REQUESTS[b"P"] = lambda fn, ctx, payload: b"P"
