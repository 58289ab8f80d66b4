"""The daemon and its life on a server.

- `daemon`: the APScheduler jobs (poll, score, deliver, digest, report), signals,
  reload on SIGHUP, the bounded stop, `run --once`.
- `sdnotify`: the systemd notify protocol; `instance_lock`: one daemon per database.
- `metrics`, `metrics_http`: `/healthz` and Prometheus `/metrics` on loopback.
- `status`: `monitor status`, is the service alive and well.

May import everything below it: the pipeline, lab-free stages, config, the database.
Must not import click (the CLI calls it).
"""
