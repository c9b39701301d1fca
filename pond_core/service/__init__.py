"""The pond service: a long-lived pond driver on the Ray cluster that runs clients' stages.

Thin clients (an Airflow task, a Prefect flow) send a compiled plan, a run id and a stage over
HTTP; the service runs the stage through the ordinary runner (leases, retries, resume, catalog)
on its warm Ray workers and reports status and log lines. See docs/service.md.

- `protocol`: the JSON of the HTTP API, as dataclasses and enums (no Ray, no HTTP).
- `errors`: what a client raises (refused token, service unreachable).
- `client`: `ServiceClient` / `AsyncServiceClient` on httpx (no Ray needed).
- `server*`, `attempts`, `logs`, `auth`: the service itself (imports Ray Serve and FastAPI).
"""
