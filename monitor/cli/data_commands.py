"""`monitor prune` and `monitor backup`: keeping the database small and safe.

Thin click commands over `monitor.db.retention` and `monitor.service.backup`
(imported when a command runs: `monitor --help` stays light). Both may run while the
daemon writes: prune changes at most `retention.batch_rows` rows per transaction and
pauses between them; backup reads one snapshot through SQLite's online backup API.
"""

from __future__ import annotations

import json

import click

from monitor.cli.common import Context, handle_errors, utcnow
from monitor.cli.progress import progress_bar
from monitor.errors import DatabaseError


@click.command("prune")
@click.option(
    "--dry-run", is_flag=True, help="Count what the retention rules would remove; change nothing."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
@handle_errors
def prune_command(obj: Context, dry_run: bool, fmt: str) -> None:
    """Apply the [retention] settings now: downsample old score points, drop old text,
    matches that never counted, sent email bodies and old job log rows.

    \b
    Evidence is never removed: a kept score point's contributions and the matches and
    articles behind them and behind every alert stay. Safe while the daemon runs (which
    applies the same rules every schedule.maintenance_tick_seconds).
    """
    from monitor import db
    from monitor.db.retention import RULE_UNITS, PruneStep, prune, retention_plan

    config = obj.config
    settings = config.settings
    from pathlib import Path

    path = Path(settings.db_path)
    if not path.exists():
        raise DatabaseError(f"{path}: no database here yet (nothing to prune)")
    plan = retention_plan(
        settings.retention, now=utcnow(), baseline_days=config.scoring.baseline_days
    )
    rules = plan.describe()
    store = db.Store.open(path, readonly=dry_run, migrate=False)
    try:
        store.check_schema()
        # The bar moves one step per rule finished (a rule's batches are not known ahead).
        with progress_bar(len(rules), label="pruning") as advance:
            started: list[str] = []

            def on_step(step: PruneStep) -> None:
                if started and started[-1] != step.rule:
                    advance(1)
                if not started or started[-1] != step.rule:
                    started.append(step.rule)

            result = prune(store, plan, dry_run=dry_run, on_step=on_step)
            advance(len(rules) - max(len(started) - 1, 0))
    finally:
        store.close()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "database": str(path),
                    "dry_run": dry_run,
                    "rows": result.rows,
                    "total": result.total,
                    "batches": result.batches,
                    "rules": plan.describe(),
                },
                indent=2,
            )
        )
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(f"database: {path}" + (" (dry run: nothing changed)" if dry_run else ""))
    for line, (rule, rows) in zip(plan.describe(), result.rows.items(), strict=True):
        click.echo(f"  {verb} {rows:>9,} {RULE_UNITS[rule]:<42} {line.split(': ', 1)[1]}")
    click.echo(f"{verb} {result.total:,} rows in {result.batches} batches")


@click.command("backup")
@click.argument("path", type=click.Path())
@click.pass_obj
@handle_errors
def backup_command(obj: Context, path: str) -> None:
    """Copy the database to PATH (a new file) while the daemon may be writing, then check
    the copy with PRAGMA integrity_check.

    \b
    Uses SQLite's online backup API: the copy is one consistent moment of the database.
    PATH must not exist; its folder must. Exit 0 copied and checked, 1 the copy failed
    (nothing is left at PATH), 2 PATH is unusable. Restoring: docs/operations.md.
    """
    from pathlib import Path

    from monitor.service.backup import backup_database

    result = backup_database(obj.db_path_for_reading(), Path(path))
    click.echo(
        f"backed up {result.source} to {result.target}: {result.size_bytes / 1e6:.1f} MB "
        f"({result.pages} pages, schema {result.schema_version}) in {result.seconds:.1f} s; "
        "integrity_check ok"
    )
