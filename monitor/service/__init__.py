"""The daemon: scheduler, sd_notify, the instance lock, metrics and status."""
