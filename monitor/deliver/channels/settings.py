"""`[[routes]]` in monitor.toml: parsed strictly (one-line errors with the key path), their
secrets read from the environment, a file or a systemd credential, and shown masked.

A route's URL (Apprise URLs carry their tokens) and bearer token are secrets:
- `url_env` / `token_env`: the name of an environment variable that holds it;
- `url_file` / `token_file`: a file that holds it (refused if everyone may read it);
- `url_credential` / `token_credential`: a systemd credential (`LoadCredential=`), read
  from `$CREDENTIALS_DIRECTORY`;
- `url` in the file itself only when that file is not readable by everyone, or for a
  webhook or Alertmanager address with no user, password or query in it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor import validate as v
from monitor.models import Route

ROUTE_KEYS = (
    "name",
    "channel",
    "url",
    "url_env",
    "url_file",
    "url_credential",
    "token_env",
    "token_file",
    "token_credential",
    "theatres",
    "kinds",
    "min_level",
    "quiet_hours",
    "timeout_seconds",
    "hold_hours",
)
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_HOLD_HOURS = 24.0
CHANNELS = ("apprise", "webhook", "alertmanager")
KINDS = ("urgent", "digest", "feed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def parse_routes(
    value: object, at: v.Location, env: Mapping[str, str], settings_file: Path | None
) -> tuple[Route, ...]:
    routes = []
    names: set[str] = set()
    for index, raw_route in enumerate(v.sequence(value, at)):
        route = _parse_route(raw_route, at.child(index), env, settings_file)
        if route.name in names:
            at.child(index).child("name").fail(f"route name {route.name!r} is used twice")
        names.add(route.name)
        routes.append(route)
    return tuple(routes)


def _parse_route(
    value: object, at: v.Location, env: Mapping[str, str], settings_file: Path | None
) -> Route:
    raw = v.mapping(value, at, allowed=ROUTE_KEYS)
    if "name" not in raw:
        at.child("name").fail("every route needs a name (used by test-notify and in status)")
    name = v.text(raw["name"], at.child("name"))
    if not _NAME.match(name):
        at.child("name").fail(f"expected letters, digits, '.', '_' or '-', got {v.describe(name)}")
    channel = v.choice(raw.get("channel", "apprise"), at.child("channel"), CHANNELS)
    if channel == "apprise":
        from monitor.deliver.channels import apprise_channel

        if not apprise_channel.available():
            at.child("channel").fail(apprise_channel.MISSING)
    url, url_source = _secret(raw, "url", at, env, required=True)
    assert url is not None
    url = url.strip()
    if "url" in raw:
        _check_inline_url(url, channel, at.child("url"), settings_file)
    url_at = at.child(url_source.split(" ", 1)[0] if url_source != "settings" else "url")
    if channel == "apprise":
        from monitor.deliver.channels import apprise_channel

        problem = apprise_channel.check_url(url)
        if problem:
            url_at.fail(problem)
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            url_at.fail(f"a {channel} route needs an http:// or https:// URL")
    token, _ = _secret(raw, "token", at, env, required=False)
    if token is not None and channel == "apprise":
        at.child("token_env").fail("an apprise route carries its token inside its URL")
    kinds = v.text_list(raw.get("kinds", ["urgent"]), at.child("kinds"))
    for i, kind in enumerate(kinds):
        v.choice(kind, at.child("kinds").child(i), KINDS)
    if not kinds:
        at.child("kinds").fail(f"expected at least one of {', '.join(KINDS)}")
    min_level = raw.get("min_level")
    return Route(
        name=name,
        channel=channel,  # type: ignore[arg-type]
        url=url,
        url_source=url_source,
        token=token,
        theatres=v.text_list(raw.get("theatres", []), at.child("theatres")),
        kinds=tuple(dict.fromkeys(kinds)),  # type: ignore[arg-type]
        min_level=None if min_level is None else v.text(min_level, at.child("min_level")),
        quiet_hours=_quiet_hours(raw, at),
        timeout_seconds=v.number(
            raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
            at.child("timeout_seconds"),
            minimum=0.1,
        ),
        hold_hours=v.number(
            raw.get("hold_hours", DEFAULT_HOLD_HOURS), at.child("hold_hours"), minimum=0.1
        ),
    )


def _quiet_hours(raw: Mapping[str, Any], at: v.Location) -> tuple[str, str] | tuple[()] | None:
    if "quiet_hours" not in raw:
        return None
    hours = v.text_list(raw["quiet_hours"], at.child("quiet_hours"))
    if not hours:
        return ()
    if len(hours) != 2 or not all(_CLOCK.match(h) for h in hours):
        at.child("quiet_hours").fail(
            'expected ["HH:MM", "HH:MM"] (start, end; [] for none), got ' + v.describe(list(hours))
        )
    return (hours[0], hours[1])


def _secret(
    raw: Mapping[str, Any], key: str, at: v.Location, env: Mapping[str, str], *, required: bool
) -> tuple[str | None, str]:
    """(value, where it came from) from exactly one of key, key_env, key_file, key_credential."""
    inline = (key,) if key == "url" else ()
    given = [k for k in (*inline, f"{key}_env", f"{key}_file", f"{key}_credential") if k in raw]
    if len(given) > 1:
        at.child(given[1]).fail(f"give only one of {', '.join(given)}")
    if not given:
        if required:
            at.child(f"{key}_env").fail(
                f"give the {key} as {key}_env (a variable name), {key}_file or {key}_credential"
            )
        return None, ""
    source = given[0]
    where = at.child(source)
    name = v.text(raw[source], where)
    if source == key:
        return name, "settings"
    if source.endswith("_env"):
        value = env.get(name)
        if not value:
            where.fail(f"environment variable {name} is not set (or empty)")
        return value, f"{source} {name}"
    if source.endswith("_credential"):
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            where.fail(f"no CREDENTIALS_DIRECTORY: add LoadCredential={name}:... to the unit")
        path = Path(directory) / name
    else:
        path = Path(name).expanduser()
        _refuse_world_readable(path, where)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        where.fail(f"cannot read {path}: {exc.strerror}")
    if not value:
        where.fail(f"{path} is empty")
    return value, f"{source} {name}"


def _refuse_world_readable(path: Path, where: v.Location) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        where.fail(f"cannot read {path}: {exc.strerror}")
    if mode & stat.S_IROTH:
        where.fail(f"{path} holds a secret but everyone may read it (chmod o-r {path})")


def _check_inline_url(url: str, channel: str, at: v.Location, settings_file: Path | None) -> None:
    if settings_file is None:
        return
    try:
        world_readable = bool(os.stat(settings_file).st_mode & stat.S_IROTH)
    except OSError:
        return
    if not world_readable:
        return
    parts = urlsplit(url)
    secretless = channel != "apprise" and not (parts.username or parts.password or parts.query)
    if not secretless:
        at.fail(
            f"{settings_file} is readable by everyone and this URL carries a secret: "
            "use url_env, url_file or url_credential (or chmod o-r the file)"
        )


def masked_url(route: Route) -> str:
    """The route's address with every secret part hidden (check-config, status)."""
    parts = urlsplit(route.url)
    if route.channel == "apprise":
        return f"{parts.scheme}://•••"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "/•••" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{tail}"


def describe_route(route: Route) -> str:
    """One line for `check-config`: everything but the secrets."""
    source = "" if route.url_source == "settings" else f" (from {route.url_source})"
    token = " with a bearer token •••" if route.token else ""
    quiet = (
        "watch list's"
        if route.quiet_hours is None
        else "none"
        if not route.quiet_hours
        else "–".join(route.quiet_hours)
    )
    return (
        f"{route.name}: {route.channel} {masked_url(route)}{source}{token}; "
        f"kinds {', '.join(route.kinds)}; theatres {', '.join(route.theatres) or 'all'}; "
        f"min level {route.min_level or 'any'}; quiet hours {quiet}"
    )


def check_against_watch_list(
    routes: tuple[Route, ...], *, theatres: set[str], levels: set[str], source: str
) -> None:
    """Theatres and levels named by routes exist in the watch list (one-line errors)."""
    root = v.Location(source, "routes")
    for index, route in enumerate(routes):
        at = root.child(index)
        for i, theatre in enumerate(route.theatres):
            if theatre not in theatres:
                at.child("theatres").child(i).fail(
                    f"unknown theatre {theatre!r} (the watch list has: {', '.join(sorted(theatres))})"
                )
        if route.min_level is not None and route.min_level not in levels:
            at.child("min_level").fail(
                f"unknown level {route.min_level!r} (levels: {', '.join(sorted(levels))})"
            )
