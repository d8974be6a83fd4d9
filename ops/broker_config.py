"""``datafactory broker config``: Mosquitto 2 configuration with per-gateway credentials and topic ACLs.

From plant configs it writes three files into an output directory:

* ``passwd``  — one user per gateway (``<enterprise>.<site>.<gateway>``), per MQTT-native device source that
  publishes to the platform broker (``<enterprise>.<site>.<source>``), the ingest user ``df-ingest`` and, when its
  password is set, the deployer ``df-deploy``. Hashes are PBKDF2-SHA512 in Mosquitto's ``$7$`` format, computed
  here so no password ever appears on a command line (``mosquitto_passwd -b`` would show it in ``ps``).
* ``acl``     — a gateway may publish only under ``df/v1/<enterprise>/<site>/#`` and read only its own config
  topic (plus its devices' topics); ingest reads ``df/v1/#`` (also as a ``$share`` group); the deployer writes
  config topics. Everything else is denied.
* ``mosquitto.conf`` — ``allow_anonymous false``, the files above, a plain listener and optionally a TLS one
  (8883), and logging of connections and denials for ``datafactory audit watch``.

Passwords come from ``DF_MQTT_PASSWORD_<USER>`` (or ``…_FILE``), ``<USER>`` being the user name upper-cased with
every other character turned into ``_``. A missing one is an error naming the variable; none is ever printed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from datafactory.config.models import MqttJsonSource, PlantConfig, SparkplugSource
from datafactory.contract.payload import MAX_MESSAGE_BYTES
from datafactory.contract.topics import TopicKind, gateway_topic, plant_filter
from datafactory.credentials import env_var_part, read_secret
from datafactory.errors import ConfigError

INGEST_USER = "df-ingest"
DEPLOY_USER = "df-deploy"
PBKDF2_ITERATIONS = 10_000  # Mosquitto's default is 101; one CONNECT costs ~5 ms more, a stolen file far more
_SALT_BYTES = 12


def password_var(user: str) -> str:
    return f"DF_MQTT_PASSWORD_{env_var_part(user.removeprefix('df-'))}"


def gateway_user(enterprise: str, site: str, gateway: str) -> str:
    """Names never contain '.', so the dotted user name is unambiguous (and needs no escaping in URLs)."""
    return f"{enterprise}.{site}.{gateway}"


def mosquitto_hash(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>``."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass
class BrokerUser:
    name: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    optional: bool = False  # generated only when its password is set

    @property
    def password_var(self) -> str:
        return password_var(self.name)


@dataclass(frozen=True)
class TlsOptions:
    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    port: int = 8883
    require_certificate: bool = False


def users_for(configs: Iterable[PlantConfig]) -> list[BrokerUser]:
    users: dict[str, BrokerUser] = {}
    for cfg in configs:
        ent, site, gw = cfg.enterprise.id, cfg.site.id, cfg.gateway.id
        gateway = BrokerUser(
            gateway_user(ent, site, gw),
            read=[gateway_topic(ent, site, gw, TopicKind.CONFIG)],
            write=[plant_filter(ent, site)],
        )
        for src in cfg.sources:
            if isinstance(src, MqttJsonSource) and not src.broker_url:
                topics = sorted({m.topic for m in src.mappings})
                gateway.read += topics
                users[gateway_user(ent, site, src.id)] = BrokerUser(gateway_user(ent, site, src.id), write=topics)
            elif isinstance(src, SparkplugSource) and not src.broker_url:
                # The gateway is the Sparkplug host application: it reads the group and sends rebirth requests
                # (NCMD); the group's edge nodes publish births/data/deaths and read their commands.
                group = f"spBv1.0/{src.group_id}"
                gateway.read.append(f"{group}/#")
                gateway.write.append(f"{group}/NCMD/#")
                users[gateway_user(ent, site, src.id)] = BrokerUser(
                    gateway_user(ent, site, src.id),
                    write=[f"{group}/#"],
                    read=[f"{group}/NCMD/#", f"{group}/DCMD/#"],
                )
        if gateway.name in users:
            raise ConfigError(gateway.name, [("gateway.id", f"user {gateway.name} is defined twice")])
        users[gateway.name] = gateway
    users[INGEST_USER] = BrokerUser(INGEST_USER, read=[plant_filter(), f"$share/+/{plant_filter()}"])
    users[DEPLOY_USER] = BrokerUser(
        DEPLOY_USER, read=[plant_filter()], write=[f"{plant_filter()[:-1]}+/+/_gw/+/config"], optional=True
    )
    return list(users.values())


def render_passwd(users: Iterable[BrokerUser], env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """The password file text and the users left out (optional ones without a password)."""
    lines: list[str] = []
    missing: list[BrokerUser] = []
    skipped: list[BrokerUser] = []
    for user in users:
        password = read_secret(user.password_var, env)
        if password is None:
            (skipped if user.optional else missing).append(user)
            continue
        lines.append(f"{user.name}:{mosquitto_hash(password)}")
    if missing:
        raise ConfigError(
            "broker passwords",
            [(u.name, f"set ${u.password_var} (or ${u.password_var}_FILE) to its password") for u in missing],
        )
    return "\n".join(lines) + "\n", [u.name for u in skipped]


def render_acl(users: Iterable[BrokerUser], skipped: Iterable[str] = ()) -> str:
    out = ["# generated by `datafactory broker config`; everything not granted here is denied"]
    for user in users:
        if user.name in skipped:
            continue
        out.append(f"\nuser {user.name}")
        out += [f"topic write {t}" for t in user.write]
        out += [f"topic read {t}" for t in user.read]
    return "\n".join(out) + "\n"


def render_conf(
    directory: Path, *, port: int, bind: str | None, log_file: Path, tls: TlsOptions | None, debug_log: bool
) -> str:
    lines = [
        "# generated by `datafactory broker config`; re-run it instead of editing",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        "",
        # Nothing lost: ingest's persistent session and its unacknowledged QoS 1 messages must survive a broker
        # restart, and Mosquitto's default queue bound (1000 messages per offline client) would silently drop
        # data during an ingest outage. The byte bound keeps a long outage from exhausting memory.
        "persistence true",
        f"persistence_location {directory / 'data'}/",
        "autosave_interval 10",
        "max_queued_messages 1000000",
        "max_queued_bytes 1073741824",
        "",
        # The contract's one size limit: the broker refuses a larger message before anyone holds it in memory
        # (Mosquitto's default is 256 MB, which ingest would receive, buffer and only then dead-letter).
        f"message_size_limit {MAX_MESSAGE_BYTES}",
        "",
        f"listener {port}" + (f" {bind}" if bind else ""),
    ]
    if tls:
        lines += [
            "",
            f"listener {tls.port}",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            "tls_version tlsv1.2",
        ]
        if tls.cafile:
            lines.append(f"cafile {tls.cafile}")
        if tls.require_certificate:
            lines.append("require_certificate true")
    lines += [
        "",
        f"log_dest file {log_file}",
        "log_timestamp true",  # epoch seconds: unambiguous for the log parser whatever the broker's time zone
        "connection_messages true",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if debug_log:
        # Mosquitto 2.0 logs refused publishes ("Denied PUBLISH …") only at debug level, next to every PUBLISH.
        lines.append("log_type debug")
    return "\n".join(lines) + "\n"


@dataclass
class BrokerFiles:
    conf: Path
    passwd: Path
    acl: Path
    users: list[str]
    skipped: list[str]


def write_broker_config(
    configs: list[PlantConfig],
    out: Path,
    *,
    port: int = 1883,
    bind: str | None = None,
    install_dir: Path | None = None,
    log_file: Path | None = None,
    tls: TlsOptions | None = None,
    debug_log: bool = True,
    env: Mapping[str, str] | None = None,
) -> BrokerFiles:
    """Write mosquitto.conf, passwd (mode 0600) and acl into ``out``; paths inside point to ``install_dir``."""
    users = users_for(configs)
    passwd_text, skipped = render_passwd(users, env)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    where = (install_dir or out).resolve()
    passwd = out / "passwd"
    fd = os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(passwd_text)
    acl = out / "acl"
    acl.write_text(render_acl(users, skipped), encoding="utf-8")
    conf = out / "mosquitto.conf"
    conf.write_text(
        render_conf(
            where, port=port, bind=bind, log_file=log_file or where / "mosquitto.log", tls=tls, debug_log=debug_log
        ),
        encoding="utf-8",
    )
    return BrokerFiles(conf, passwd, acl, [u.name for u in users if u.name not in skipped], skipped)
