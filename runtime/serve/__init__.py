"""``cam-rt serve``: CAMs over HTTP (Starlette on uvicorn, one ONNX Runtime session).

- :mod:`.config`: the server's limits (:class:`ServeConfig`) and a request's options;
- :mod:`.codec`: request bodies to images (size checked before decoding), results to JSON;
- :mod:`.batcher`: the bounded queue and the worker thread that micro-batches requests;
- :mod:`.metrics`: the Prometheus metrics of one app;
- :mod:`.app`: the routes; :mod:`.server`: uvicorn, warm-up and graceful shutdown.

Only :mod:`.config` and :mod:`.codec` import nothing of the ``serve`` extra (starlette,
uvicorn, prometheus-client), so the CLI can describe the command without it installed.
"""
