"""Loading and validating configuration: `indicators.yaml` (what to watch) and the
deployment settings (`monitor.toml` plus `MONITOR_*` environment variables).

Owns: finding the files, strict validation with one-line errors that name the file and
the key path, and building the frozen `Config`. It must not open the database or the
network. Theatre and indicator patterns are compiled by `rules` (called from here), so a
bad pattern stops startup like any other config error.

Why one module of this size: one strict reader per settings section and for the watch
list, all built on `validate`'s key-path errors, so every broken key reads the same way.
The sections grew with issues 13 and 15 (routes, retention); moving each reader beside
the package it configures is the natural next split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import validate as v
from monitor.deliver.channels.settings import check_against_watch_list, parse_routes
from monitor.errors import ConfigError
from monitor.fetch.netguard import validate_feed_url
from monitor.models import (
    AlertSettings,
    Feed,
    HealthSettings,
    HttpSettings,
    Level,
    RetentionSettings,
    ScheduleSettings,
    ScoringSettings,
    Settings,
    SmtpSettings,
)

if TYPE_CHECKING:
    from monitor.detect.rules import RuleSet

INDICATORS_FILENAME = "indicators.yaml"
# libyaml's parser when PyYAML was built with it: 8x faster than the pure-Python one (the
# shipped watch list in 9 ms instead of 135 ms; a 1,000-feed list in 64 ms instead of
# 540 ms), with the same safe constructor, so the same values (tests/test_config.py).
# Imported on first use, as are TOML, importlib.resources and the address parser (the
# email package): a query command reads its settings, often no YAML at all, and starts
# 20-50 ms sooner for it (issue 17). `YAML_LOADER` is set when first asked for.
YAML_LOADER: Any


def __getattr__(name: str) -> Any:
    if name == "YAML_LOADER":
        return _yaml_loader()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _yaml_loader() -> Any:
    loader = globals().get("YAML_LOADER")
    if loader is None:
        import yaml

        loader = globals()["YAML_LOADER"] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


PASSWORD_CREDENTIAL = "smtp-password"  # name used with systemd LoadCredential=


@dataclass(frozen=True)
class Config:
    """Everything `monitor` was told: validated, compiled, immutable."""

    settings: Settings
    feeds: tuple[Feed, ...]
    scoring: ScoringSettings
    alerts: AlertSettings
    rules: RuleSet
    indicators_path: str
    settings_path: str | None = None

    def feed(self, feed_id: str) -> Feed | None:
        return next((feed for feed in self.feeds if feed.id == feed_id), None)


# ---------------------------------------------------------------------------
# Finding the files


def bundled_indicators_text() -> str:
    """The indicators.yaml shipped with the package (the built-in defaults).

    An installed package holds it as package data (importlib.resources), readable wherever
    the code is; an editable install reads it from the source tree's root. ConfigError,
    naming the way out, when it cannot be read (a checkout in a directory this user cannot
    enter).
    """
    here = Path(__file__).resolve().parent
    try:
        if Path(__file__).is_file():
            # a package on disk: importlib.resources (~10 ms to import) would read beside
            # this module, as this does
            packaged: Any = here / INDICATORS_FILENAME
        else:  # zipped and the like
            from importlib import resources

            packaged = resources.files("monitor").joinpath(INDICATORS_FILENAME)
        if packaged.is_file():
            return str(packaged.read_text(encoding="utf-8"))
        # An editable install runs from the source tree, where the file sits at the repo root.
        source_tree = here.parent / INDICATORS_FILENAME
        return source_tree.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{INDICATORS_FILENAME} (built-in): cannot read it ({exc.strerror or exc}); "
            "give a watch list with --indicators or MONITOR_INDICATORS"
        ) from None


def resolve_indicators_path(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> Path | None:
    """Explicit path, else MONITOR_INDICATORS, else ./indicators.yaml, else None (bundled)."""
    if explicit:
        return Path(explicit)
    if env.get("MONITOR_INDICATORS"):
        return Path(env["MONITOR_INDICATORS"])
    local = Path.cwd() / INDICATORS_FILENAME
    return local if local.is_file() else None


def load_config(
    *,
    indicators_path: str | os.PathLike[str] | None = None,
    settings_path: str | os.PathLike[str] | None = None,
    db_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load, validate and compile the whole configuration, or raise `ConfigError`."""
    environ = dict(os.environ if env is None else env)
    source_name, raw_text = _indicators_source(indicators_path, environ)
    watch = parse_indicators_text(raw_text, source=source_name)
    settings, settings_file = load_deployment(
        settings_path=settings_path, db_path=db_path, env=environ
    )
    check_against_watch_list(
        settings.routes,
        theatres=set(watch.rules.theatres),
        levels={level.name for level in watch.scoring.levels},
        source=settings_file or "settings",
    )
    return Config(
        settings=settings,
        feeds=watch.feeds,
        scoring=watch.scoring,
        alerts=watch.alerts,
        rules=watch.rules,
        indicators_path=source_name,
        settings_path=settings_file,
    )


def load_deployment(
    *,
    settings_path: str | os.PathLike[str] | None = None,
    db_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, str | None]:
    """The deployment settings alone (`monitor.toml` and MONITOR_* variables, `db_path`
    first), and the settings file they came from: what a query command needs to find
    the database, without reading or compiling the watch list."""
    environ = os.environ if env is None else env
    settings_file = settings_path or environ.get("MONITOR_CONFIG") or None
    settings = load_settings(settings_file, environ)
    if db_path is not None:
        settings = replace(settings, db_path=Path(db_path))
    return settings, str(settings_file) if settings_file else None


def load_alert_settings(
    *, indicators_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> AlertSettings:
    """The watch list's `alerts` section alone, validated as `load_config` validates it
    (`monitor status` needs its thresholds; compiling every pattern would cost it more
    than its queries). The rest of the file is not checked: `check-config` does that."""
    environ = os.environ if env is None else env
    source_name, raw_text = _indicators_source(indicators_path, environ)
    root = v.Location(source_name)
    top = v.mapping(_parse_yaml_document(raw_text, source=source_name), root, allowed=_TOP_KEYS)
    return _parse_alerts(top.get("alerts"), root.child("alerts"))


def load_theatre_ids(
    *, indicators_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The ids of the watch list's theatres, read without compiling anything (the query
    commands name them when asked for an unknown one)."""
    environ = os.environ if env is None else env
    source_name, raw_text = _indicators_source(indicators_path, environ)
    top = _parse_yaml_document(raw_text, source=source_name)
    theatres = top.get("theatres") if isinstance(top, dict) else None
    return tuple(str(key) for key in theatres) if isinstance(theatres, dict) else ()


def _indicators_source(
    indicators_path: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[str, str]:
    """(the name errors use, the text) of the watch list to load."""
    found = resolve_indicators_path(indicators_path, env)
    if found is None:
        return f"{INDICATORS_FILENAME} (built-in)", bundled_indicators_text()
    return str(found), _read_text(found)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


# ---------------------------------------------------------------------------
# indicators.yaml


@dataclass(frozen=True)
class WatchList:
    feeds: tuple[Feed, ...]
    scoring: ScoringSettings
    alerts: AlertSettings
    rules: RuleSet


_TOP_KEYS = ("version", "feeds", "scoring", "alerts", "theatres", "indicators")


def load_yaml(raw_text: str) -> Any:
    """`yaml.safe_load` through `YAML_LOADER`. A file it refuses is parsed again by the
    pure-Python loader, whose error (message and line) is then the one raised: the same
    error whichever parser the installed PyYAML has."""
    import yaml

    loader = _yaml_loader()
    try:
        return yaml.load(raw_text, Loader=loader)
    except yaml.YAMLError:
        if loader is yaml.SafeLoader:
            raise
    return yaml.load(raw_text, Loader=yaml.SafeLoader)


def _parse_yaml_document(raw_text: str, *, source: str) -> object:
    import yaml

    try:
        document = load_yaml(raw_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "syntax"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: {where}: invalid YAML: {problem}") from None
    if document is None:
        v.Location(source).fail("the file is empty")
    return document


def parse_indicators_text(raw_text: str, *, source: str) -> WatchList:
    root = v.Location(source)
    top = v.mapping(_parse_yaml_document(raw_text, source=source), root, allowed=_TOP_KEYS)
    version = top.get("version", 1)
    if version != 1:
        root.child("version").fail(f"unsupported version {v.describe(version)} (expected 1)")
    feeds = _parse_feeds(top.get("feeds"), root.child("feeds"))
    alerts = _parse_alerts(top.get("alerts"), root.child("alerts"))
    # the baseline's days are the desk's days unless scoring names its own zone
    scoring = _parse_scoring(top.get("scoring"), root.child("scoring"), alerts.timezone)
    # imported here: the compiler and its stemmers are what only a whole load needs
    from monitor.detect.rules import compile_ruleset

    rules = compile_ruleset(top.get("theatres"), top.get("indicators"), source=source)
    for theatre in rules.theatres.values():
        for index, address in enumerate(theatre.recipients):
            _check_address(
                address, root.child("theatres").child(theatre.id).child("recipients").child(index)
            )
    return WatchList(feeds=feeds, scoring=scoring, alerts=alerts, rules=rules)


def parse_feed_list(raw_text: str, *, source: str) -> tuple[Feed, ...]:
    """The `feeds` section alone, checked as `parse_indicators_text` checks it, without
    compiling the rules (`monitor feeds add` re-reads its edit with this)."""
    root = v.Location(source)
    top = v.mapping(_parse_yaml_document(raw_text, source=source), root, allowed=_TOP_KEYS)
    return _parse_feeds(top.get("feeds"), root.child("feeds"))


_FEED_KEYS = ("id", "name", "url", "source_weight", "interval_minutes", "language")


def _parse_feeds(value: object, at: v.Location) -> tuple[Feed, ...]:
    feeds: list[Feed] = []
    seen: set[str] = set()
    for index, item in enumerate(v.sequence(value, at)):
        here = at.child(index)
        raw = v.mapping(item, here, allowed=_FEED_KEYS)
        for required in ("id", "url"):
            if required not in raw:
                here.child(required).fail("missing (every feed needs an id and a url)")
        feed_id = v.text(raw["id"], here.child("id"))
        if feed_id in seen:
            here.child("id").fail(f"duplicate feed id {feed_id!r}")
        seen.add(feed_id)
        url_at = here.child("url")
        try:
            url = validate_feed_url(v.text(raw["url"], url_at))
        except ValueError as exc:
            url_at.fail(str(exc))
        interval = raw.get("interval_minutes")
        language = raw.get("language")
        feeds.append(
            Feed(
                id=feed_id,
                url=url,
                name=v.text(raw.get("name", feed_id), here.child("name")),
                source_weight=v.number(
                    raw.get("source_weight", 1.0), here.child("source_weight"), minimum=0.0
                ),
                interval_seconds=None
                if interval is None
                else int(v.number(interval, here.child("interval_minutes"), minimum=1) * 60),
                language=None
                if language is None
                else v.choice(language, here.child("language"), ("en", "ru")),
            )
        )
    return tuple(feeds)


_SCORING_KEYS = (
    "half_life_hours",
    "window_days",
    "saturation",
    "corroboration",
    "corroboration_cap",
    "baseline_days",
    "timezone",
    "levels",
    "methodology_version",
)


def _parse_scoring(value: object, at: v.Location, timezone: str) -> ScoringSettings:
    raw = v.mapping(value, at, allowed=_SCORING_KEYS)
    defaults = ScoringSettings()
    levels = defaults.levels
    if "levels" in raw:
        levels = _parse_levels(raw["levels"], at.child("levels"))
    return ScoringSettings(
        half_life_hours=_num(raw, "half_life_hours", at, defaults.half_life_hours, positive=True),
        window_days=_num(raw, "window_days", at, defaults.window_days, positive=True),
        saturation=_num(raw, "saturation", at, defaults.saturation, positive=True),
        corroboration=_num(raw, "corroboration", at, defaults.corroboration),
        corroboration_cap=v.integer(
            raw.get("corroboration_cap", defaults.corroboration_cap),
            at.child("corroboration_cap"),
            minimum=1,
        ),
        baseline_days=v.integer(
            raw.get("baseline_days", defaults.baseline_days), at.child("baseline_days"), minimum=1
        ),
        timezone=_timezone(raw.get("timezone", timezone), at.child("timezone")),
        levels=levels,
        methodology_version=str(raw.get("methodology_version", defaults.methodology_version)),
    )


def _num(
    raw: dict[str, Any], key: str, at: v.Location, default: float, *, positive: bool = False
) -> float:
    value = v.number(raw.get(key, default), at.child(key), minimum=0.0)
    if positive and value <= 0:
        at.child(key).fail(f"expected a number above 0, got {v.describe(raw.get(key))}")
    return value


def _parse_levels(value: object, at: v.Location) -> tuple[Level, ...]:
    levels: list[Level] = []
    for index, item in enumerate(v.sequence(value, at)):
        here = at.child(index)
        raw = v.mapping(item, here, allowed=("name", "enter", "exit"))
        for required in ("name", "enter", "exit"):
            if required not in raw:
                here.child(required).fail("missing")
        level = Level(
            name=v.text(raw["name"], here.child("name")),
            enter=v.number(raw["enter"], here.child("enter"), minimum=0.0),
            exit=v.number(raw["exit"], here.child("exit"), minimum=0.0),
        )
        if level.enter > 100:
            here.child("enter").fail(f"expected at most 100, got {level.enter:g}")
        if level.exit > level.enter:
            here.child("exit").fail(
                f"must not be above enter ({level.exit:g} > {level.enter:g}): "
                "a level is left below a lower threshold than the one that enters it"
            )
        if levels and level.enter <= levels[-1].enter:
            here.child("enter").fail("levels must be listed from lowest to highest")
        levels.append(level)
    if not levels:
        at.fail("expected at least one level")
    if levels[0].enter != 0:
        at.child(0).child("enter").fail("the first (lowest) level must enter at 0")
    if len({level.name for level in levels}) != len(levels):
        at.fail("level names must be unique")
    return tuple(levels)


_ALERT_KEYS = (
    "min_level_hours",
    "repeat_interval_hours",
    "surge_points_24h",
    "digest_time",
    "timezone",
    "quiet_hours",
    "feed_down_after_hours",
)


def _parse_alerts(value: object, at: v.Location) -> AlertSettings:
    raw = v.mapping(value, at, allowed=_ALERT_KEYS)
    defaults = AlertSettings()
    timezone = _timezone(raw.get("timezone", defaults.timezone), at.child("timezone"))
    digest_time = _clock(raw.get("digest_time", defaults.digest_time), at.child("digest_time"))
    quiet: tuple[str, str] | None = None
    if raw.get("quiet_hours") is not None:
        pair = v.sequence(raw["quiet_hours"], at.child("quiet_hours"))
        if len(pair) != 2:
            at.child("quiet_hours").fail('expected two times, e.g. ["22:00", "07:00"]')
        quiet = (
            _clock(pair[0], at.child("quiet_hours").child(0)),
            _clock(pair[1], at.child("quiet_hours").child(1)),
        )

    def hours(key: str, default_seconds: int) -> int:
        return int(_num(raw, key, at, default_seconds / 3600) * 3600)

    return AlertSettings(
        min_level_seconds=hours("min_level_hours", defaults.min_level_seconds),
        repeat_interval_seconds=hours("repeat_interval_hours", defaults.repeat_interval_seconds),
        surge_points_24h=_num(
            raw, "surge_points_24h", at, defaults.surge_points_24h, positive=True
        ),
        digest_time=digest_time,
        timezone=timezone,
        quiet_hours=quiet,
        feed_down_after_seconds=hours("feed_down_after_hours", defaults.feed_down_after_seconds),
    )


def _clock(value: object, at: v.Location) -> str:
    text = v.text(value, at)
    parts = text.split(":")
    if (
        len(parts) != 2
        or not all(p.isdigit() and len(p) == 2 for p in parts)
        or int(parts[0]) > 23
        or int(parts[1]) > 59
    ):
        at.fail(f'expected a time of day "HH:MM", got {v.describe(value)}')
    return text


def _timezone(value: object, at: v.Location) -> str:
    """An IANA time zone name that this machine knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = v.text(value, at)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        at.fail(f"unknown time zone {name!r} (use an IANA name such as Asia/Bishkek)")
    return name


# ---------------------------------------------------------------------------
# Deployment settings: monitor.toml, then MONITOR_* environment variables on top


_SETTINGS_KEYS = (
    "database_path",
    "maildir",
    "metrics_listen",
    "report_dir",
    "report_url",
    "smtp",
    "http",
    "schedule",
    "health",
    "retention",
    "routes",
)
_SMTP_KEYS = (
    "host",
    "port",
    "security",
    "username",
    "password_file",
    "timeout_seconds",
    "sender",
    "recipients",
    "ca_file",
)


def load_settings(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Settings:
    """Settings from the TOML file (optional) with MONITOR_* variables taking precedence."""
    raw: dict[str, Any] = {}
    source = str(path) if path else "settings"
    if path:
        import tomllib

        try:
            raw = tomllib.loads(_read_text(Path(path)))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    root = v.Location(source)
    top = v.mapping(raw, root, allowed=_SETTINGS_KEYS)
    _apply_environment(top, env)
    env_source = v.Location("environment")
    state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    default_db = Path(state_dir) / "monitor.db" if state_dir else Settings().db_path

    db_path = (
        Path(v.text(top["database_path"], root.child("database_path")))
        if "database_path" in top
        else default_db
    )
    maildir = Path(v.text(top["maildir"], root.child("maildir"))) if top.get("maildir") else None
    metrics = (
        v.text(top["metrics_listen"], root.child("metrics_listen"))
        if top.get("metrics_listen")
        else None
    )
    if metrics is not None:
        _check_listen(metrics, root.child("metrics_listen"))
    report_dir = _report_dir(top.get("report_dir"), root.child("report_dir"), db_path)
    report_url = _report_url(top.get("report_url"), root.child("report_url"))
    smtp = _parse_smtp(top.get("smtp"), root.child("smtp"), env, env_source)
    http = _parse_dataclass_table(top.get("http"), root.child("http"), HttpSettings())
    schedule = _parse_dataclass_table(
        top.get("schedule"), root.child("schedule"), ScheduleSettings()
    )
    health = _parse_health(top.get("health"), root.child("health"))
    retention = _parse_retention(top.get("retention"), root.child("retention"))
    routes = parse_routes(
        top.get("routes"), root.child("routes"), env, Path(path) if path else None
    )
    return Settings(
        db_path=db_path,
        maildir=maildir,
        smtp=smtp,
        http=http,
        schedule=schedule,
        metrics_listen=metrics,
        report_dir=report_dir,
        report_url=report_url,
        health=health,
        retention=retention,
        routes=routes,
    )


MAX_RETENTION_DAYS = 36_500  # a century: beyond that, say 0 (keep for ever)
MAX_BATCH_ROWS = 100_000


def _parse_retention(value: object, at: v.Location) -> RetentionSettings:
    """[retention]: whole days from 0 (off: kept for ever) to MAX_RETENTION_DAYS, and the
    hourly stage of the score points no shorter than the full-resolution one."""
    defaults = RetentionSettings()
    fields = defaults.__dataclass_fields__
    raw = v.mapping(value, at, allowed=fields)
    changes: dict[str, int] = {}
    for key, item in raw.items():
        here = at.child(key)
        if key == "batch_rows":
            number = v.integer(item, here, minimum=1)
            if number > MAX_BATCH_ROWS:
                here.fail(f"expected at most {MAX_BATCH_ROWS} rows, got {number}")
        else:
            number = v.integer(item, here, minimum=0)
            if number > MAX_RETENTION_DAYS:
                here.fail(
                    f"expected at most {MAX_RETENTION_DAYS} days (0 keeps for ever), got {number}"
                )
        changes[key] = number
    result = replace(defaults, **changes)
    full, hourly = result.score_full_days, result.score_hourly_days
    if full == 0 and hourly != 0:
        at.child("score_hourly_days").fail(
            "score_full_days = 0 keeps every point for ever; set score_hourly_days = 0 too"
        )
    if hourly != 0 and hourly < full:
        at.child("score_hourly_days").fail(
            f"must be 0 (no daily stage) or at least score_full_days ({hourly} < {full})"
        )
    return result


MAX_QUIET_PERIOD_HOURS = 8760.0  # a year: beyond that the check means nothing


def _parse_health(value: object, at: v.Location) -> HealthSettings:
    raw = v.mapping(value, at, allowed=("quiet_period_hours",))
    hours = raw.get("quiet_period_hours", HealthSettings().quiet_period_hours)
    if (
        isinstance(hours, bool)
        or not isinstance(hours, int | float)
        or not 0 <= hours <= MAX_QUIET_PERIOD_HOURS  # also refuses nan and inf
    ):
        at.child("quiet_period_hours").fail(
            f"expected a number of hours from 0 (off) to {MAX_QUIET_PERIOD_HOURS:g}, "
            f"got {v.describe(hours)}"
        )
    return HealthSettings(quiet_period_hours=float(hours))


# Environment variable -> (table or None, key, kind)
_ENV_MAP: dict[str, tuple[str | None, str, str]] = {
    "MONITOR_DB": (None, "database_path", "str"),
    "MONITOR_MAILDIR": (None, "maildir", "str"),
    "MONITOR_METRICS_LISTEN": (None, "metrics_listen", "str"),
    "MONITOR_REPORT_DIR": (None, "report_dir", "str"),
    "MONITOR_REPORT_URL": (None, "report_url", "str"),
    "MONITOR_SMTP_HOST": ("smtp", "host", "str"),
    "MONITOR_SMTP_PORT": ("smtp", "port", "int"),
    "MONITOR_SMTP_SECURITY": ("smtp", "security", "str"),
    "MONITOR_SMTP_USERNAME": ("smtp", "username", "str"),
    "MONITOR_SMTP_PASSWORD_FILE": ("smtp", "password_file", "str"),
    "MONITOR_SMTP_SENDER": ("smtp", "sender", "str"),
    "MONITOR_SMTP_RECIPIENTS": ("smtp", "recipients", "list"),
    "MONITOR_SMTP_CA_FILE": ("smtp", "ca_file", "str"),
    "MONITOR_ALLOW_PRIVATE_NETWORKS": ("http", "allow_private_networks", "list"),
}


def _apply_environment(top: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, (table, key, kind) in _ENV_MAP.items():
        if name not in env:
            continue
        raw = env[name]
        value: object
        if kind == "int":
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(
                    f"environment: {name}: expected a whole number, got {raw!r}"
                ) from None
        elif kind == "list":
            value = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            value = raw
        if table is None:
            top[key] = value
        else:
            section = top.setdefault(table, {})
            if not isinstance(section, dict):
                raise ConfigError(f"settings: {table}: expected a table")
            section[key] = value


def _parse_smtp(
    value: object, at: v.Location, env: Mapping[str, str], env_at: v.Location
) -> SmtpSettings:
    raw = v.mapping(value, at, allowed=_SMTP_KEYS)
    defaults = SmtpSettings()
    security = v.choice(
        raw.get("security", defaults.security), at.child("security"), ("none", "starttls", "tls")
    )
    port_default = {"none": 25, "starttls": 587, "tls": 465}[security]
    recipients_at = (
        env_at.child("MONITOR_SMTP_RECIPIENTS")
        if "MONITOR_SMTP_RECIPIENTS" in env
        else at.child("recipients")
    )
    recipients = v.text_list(raw.get("recipients", []), recipients_at)
    for index, address in enumerate(recipients):
        _check_address(address, recipients_at.child(index))
    sender_at = (
        env_at.child("MONITOR_SMTP_SENDER") if "MONITOR_SMTP_SENDER" in env else at.child("sender")
    )
    sender = v.text(raw.get("sender", defaults.sender), sender_at)
    if sender != defaults.sender:  # the default is valid (and its check loads the email package)
        _check_address(sender, sender_at)
    username = raw.get("username")
    return SmtpSettings(
        host=v.text(raw.get("host", defaults.host), at.child("host")),
        port=v.integer(raw.get("port", port_default), at.child("port"), minimum=1),
        security=security,  # type: ignore[arg-type]
        username=None if username in (None, "") else v.text(username, at.child("username")),
        password=_smtp_password(raw, at, env),
        timeout_seconds=v.number(
            raw.get("timeout_seconds", defaults.timeout_seconds),
            at.child("timeout_seconds"),
            minimum=0.1,
        ),
        sender=sender,
        recipients=recipients,
        ca_file=_smtp_ca_file(raw.get("ca_file"), at.child("ca_file"), security),
    )


def _check_address(text: str, at: v.Location) -> None:
    """The check rendering makes (`monitor.deliver.addresses`): what loads is what can be sent."""
    from monitor.deliver.addresses import parse_address

    try:
        parse_address(text, "")
    except ValueError as exc:
        at.fail(str(exc))


def _smtp_ca_file(value: object, at: v.Location, security: str) -> str | None:
    """A readable PEM file of certificates, checked at load (not at the first alert)."""
    if value in (None, ""):
        return None
    path = Path(v.text(value, at)).expanduser()
    if security == "none":
        at.fail("only used with security starttls or tls")
    import ssl  # only a configured CA file needs it

    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        at.fail(f"no such file: {path}")
    except (OSError, ssl.SSLError) as error:
        at.fail(f"not a readable PEM file of CA certificates: {path} ({error})")
    return str(path)


def _smtp_password(raw: Mapping[str, Any], at: v.Location, env: Mapping[str, str]) -> str | None:
    """The SMTP password never lives in a config file: environment, or a file (credential)."""
    if env.get("MONITOR_SMTP_PASSWORD"):
        return env["MONITOR_SMTP_PASSWORD"]
    candidates: list[tuple[Path, v.Location]] = []
    if raw.get("password_file"):
        candidates.append(
            (
                Path(v.text(raw["password_file"], at.child("password_file"))),
                at.child("password_file"),
            )
        )
    if env.get("CREDENTIALS_DIRECTORY"):
        credential = Path(env["CREDENTIALS_DIRECTORY"]) / PASSWORD_CREDENTIAL
        if credential.exists():
            candidates.append((credential, v.Location("environment", "CREDENTIALS_DIRECTORY")))
    for path, where in candidates:
        try:
            password = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            where.fail(f"cannot read the SMTP password file {path}: {exc.strerror}")
        # An empty file means "no password" (the systemd unit needs the file to exist).
        return password or None
    return None


def _parse_dataclass_table(value: object, at: v.Location, defaults: Any) -> Any:
    """Read a flat table whose keys are the fields of a settings dataclass, typed like them."""
    fields = {name: getattr(defaults, name) for name in defaults.__dataclass_fields__}
    raw = v.mapping(value, at, allowed=fields)
    changes: dict[str, Any] = {}
    for key, item in raw.items():
        default = fields[key]
        here = at.child(key)
        if isinstance(default, bool):
            changes[key] = v.boolean(item, here)
        elif isinstance(default, int):
            changes[key] = v.integer(item, here, minimum=0)
        elif isinstance(default, float):
            changes[key] = v.number(item, here, minimum=0.0)
        elif isinstance(default, tuple):
            changes[key] = v.text_list(item, here)
        else:
            changes[key] = v.text(item, here)
    if "allow_private_networks" in changes:
        _check_networks(changes["allow_private_networks"], at.child("allow_private_networks"))
    return replace(defaults, **changes)


def _check_networks(networks: tuple[str, ...], at: v.Location) -> None:
    import ipaddress

    for index, network in enumerate(networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            at.child(index).fail(f"not a network in CIDR form (e.g. 127.0.0.0/8): {network!r}")


def _report_dir(value: object, at: v.Location, db_path: Path) -> Path | None:
    """The folder the static report is written to: its parent must exist (the report is
    built beside it and swapped in), and it must not hold the database."""
    if value in (None, ""):
        return None
    path = Path(v.text(value, at)).expanduser()
    if not path.parent.is_dir():
        at.fail(f"the folder {str(path.parent)!r} that would hold the report does not exist")
    if path.exists() and not path.is_dir():
        at.fail(f"{str(path)!r} exists and is not a folder")
    if path.resolve() in db_path.resolve().parents or path.resolve() == db_path.resolve():
        at.fail(f"{str(path)!r} holds the database; the report needs a folder of its own")
    return path


def _report_url(value: object, at: v.Location) -> str | None:
    """The address where report_dir is served (alert emails link to pages under it)."""
    if value in (None, ""):
        return None
    from urllib.parse import urlsplit

    url = v.text(value, at).strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        at.fail(f"not a URL: {url!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        at.fail(f"expected an http:// or https:// address, got {url!r}")
    if any(char.isspace() for char in url) or parts.query or parts.fragment:
        at.fail(f"expected a plain address without spaces, query or fragment, got {url!r}")
    return url.rstrip("/") + "/"


def _check_listen(listen: str, at: v.Location) -> None:
    from monitor.listen import parse_listen_address

    try:
        parse_listen_address(listen)
    except ConfigError as exc:
        at.fail(str(exc).split(": ", 1)[-1])  # drop its own "metrics_listen:" prefix


# What a reload (SIGHUP) cannot change in a running daemon: the database it holds open and
# locked, and the HTTP side built at start (client pools and limits, the address guard,
# the parse workers' bounds). A reload that changes them keeps the running values and says
# so; a restart applies them. Everything else applies at once: feeds, theatres, indicators,
# scoring, alerts, smtp, maildir, schedule (the jobs are rescheduled) and metrics_listen
# (the endpoint is started, moved or stopped).
RESTART_ONLY_SETTINGS = ("database_path", "http")
RELOAD_NOTE = (
    "a reload (SIGHUP) applies every setting except "
    + " and ".join(RESTART_ONLY_SETTINGS)
    + ", which need a restart"
)


def settings_needing_restart(running: Settings, loaded: Settings) -> list[str]:
    """The settings in RESTART_ONLY_SETTINGS that `loaded` changes."""
    changed = []
    if loaded.db_path != running.db_path:
        changed.append("database_path")
    if loaded.http != running.http:
        changed.append("http")
    return changed
