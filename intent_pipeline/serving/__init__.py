"""Serving: the one prediction service behind the dashboard and the API, and the API around it.

- `service`: PredictionService (clean -> mask -> score -> fallback rule -> log rows), holding the
  loaded model in one swappable object.
- `logger`: PredictionLogger, the API's background database writer (batched, retried).
- `batcher`: MicroBatcher, dynamic micro-batching with a bounded queue.
- `limits`: ASGI middleware for body-size limits and bearer-token auth.
- `metrics`: the Prometheus metrics behind GET /metrics, and the middleware counting every answer.
- `api`: the FastAPI application; `server`: binding a socket and running uvicorn workers.
"""
