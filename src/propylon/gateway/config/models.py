"""The gateway configuration as typed models: one definition for validation and the JSON Schema.

Every model forbids unknown keys and is frozen: a parsed configuration is a value, so
two snapshots can be compared field by field (a cluster whose definition did not
change keeps its load balancer and health state across a reload). Durations are
seconds (floats); sizes are bytes.

Shape checks that need no other section live here as field types and validators
(a regex compiles, exactly one action per route); checks across sections (a route's
cluster exists) live in :mod:`propylon.gateway.config.crossref`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ...metrics.access_log import DEFAULT_FIELDS, FIELDS
from ...protocols.http.compression import DEFAULT_TYPES

__all__ = ["GatewayConfig", "PATTERN_HINTS"]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    return pattern


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return text


Regex = Annotated[str, AfterValidator(_compiles)]
Address = Annotated[str, AfterValidator(_address)]
Seconds = Annotated[float, Field(gt=0)]
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
#: Field values: visible characters, spaces and tabs (no CR, LF or NUL to split a head).
_HEADER_VALUE = r"^[\t\x20-\x7e\x80-\U0010ffff]*$"
_METHOD = r"^[A-Z]+$"
_PLUGIN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
_HASH_ON = r"^(client_ip|path|uri|(header|query|cookie):.+)$"
HeaderName = Annotated[str, Field(pattern=_HEADER_NAME)]
HeaderValue = Annotated[str, Field(pattern=_HEADER_VALUE)]

#: What a value failing one of the patterns above should have been, for error messages.
PATTERN_HINTS = {
    _HEADER_NAME: "not a valid header name",
    _HEADER_VALUE: "a header value cannot contain CR, LF or NUL",
    _METHOD: "expected an upper-case method such as GET",
    _PLUGIN: "expected 'module:Class'",
    _HASH_ON: "expected client_ip, path, uri, header:NAME, query:NAME or cookie:NAME",
}

class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- listeners -------------------------------------------------------------------------

class CertPair(Model):
    """A certificate chain and its private key (PEM files)."""

    cert: str
    key: str


class SniCertificate(CertPair):
    """A certificate served to clients asking for one of ``server_names`` (SNI)."""

    server_names: list[str] = Field(min_length=1)


class ListenerTls(Model):
    """TLS of an https listener: a default certificate, more by SNI, the lowest version."""

    default: CertPair
    certificates: list[SniCertificate] = []
    min_version: Literal["1.2", "1.3"] = "1.2"


class ListenerTimeouts(Model):
    """Downstream timeouts, in seconds (see ``HttpServerOptions``)."""

    header_read: Seconds = 60.0
    keepalive: Seconds = 60.0
    body_read: Seconds = 60.0
    write: Seconds = 60.0


class Listener(Model):
    """Where the gateway accepts clients."""

    name: str = Field(min_length=1)
    address: Address
    protocol: Literal["http", "https"] = "http"
    tls: Optional[ListenerTls] = None
    h2: bool = True
    h2c: bool = False
    timeouts: ListenerTimeouts = ListenerTimeouts()

    @model_validator(mode="after")
    def _tls_matches_protocol(self) -> "Listener":
        if self.protocol == "https" and self.tls is None:
            raise ValueError("an https listener needs a 'tls' section")
        if self.protocol == "http" and self.tls is not None:
            raise ValueError("'tls' is only for https listeners")
        return self


# --- routes ----------------------------------------------------------------------------

def _one_of(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        listed = ", ".join(repr(n) for n in names)
        found = f" (found {', '.join(repr(n) for n in given)})" if given else ""
        raise ValueError(f"{what} needs exactly one of {listed}{found}")


class PathMatch(Model):
    """One of ``exact``, ``prefix`` (plain string prefix) or ``regex`` (must match the
    whole path; named groups become captures for rewrites and redirects)."""

    exact: Optional[str] = None
    prefix: Optional[str] = None
    regex: Optional[Regex] = None

    @model_validator(mode="after")
    def _one(self) -> "PathMatch":
        _one_of(self, ("exact", "prefix", "regex"), "a path match")
        return self


class ValueMatch(Model):
    """A header or query parameter: ``present``, an ``exact`` value or a ``regex``."""

    name: str = Field(min_length=1)
    exact: Optional[str] = None
    regex: Optional[Regex] = None
    present: Optional[bool] = None

    @model_validator(mode="after")
    def _one(self) -> "ValueMatch":
        _one_of(self, ("exact", "regex", "present"), f"the match on {self.name!r}")
        return self


class Match(Model):
    """What a request must look like; every given condition must hold."""

    hosts: list[str] = []
    path: Optional[PathMatch] = None
    methods: list[Annotated[str, Field(pattern=_METHOD)]] = []
    headers: list[ValueMatch] = []
    query: list[ValueMatch] = []


class ProxyAction(Model):
    """Send the request to a cluster."""

    cluster: str


class RedirectAction(Model):
    """Answer with a redirect. ``location`` may use ``{host}``, ``{path}``, ``{query}``
    (with its ``?``, empty when there is none) and the path regex's named groups."""

    location: HeaderValue
    status: Literal[301, 302, 303, 307, 308] = 302


class FixedResponse(Model):
    """Answer directly with this status, body and headers."""

    status: int = Field(ge=200, le=599)
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[HeaderName, HeaderValue] = {}

    @model_validator(mode="after")
    def _bodyless(self) -> "FixedResponse":
        if self.status in (204, 304) and self.body:
            raise ValueError(f"a {self.status} response has no body")
        return self


class RegexRewrite(Model):
    """Replace the first match of ``pattern`` in the path (``\\g<name>`` refers to groups)."""

    pattern: Regex
    replacement: str


class Rewrite(Model):
    """How the path sent upstream differs from the client's (the query is kept)."""

    strip_prefix: Optional[str] = None
    regex: Optional[RegexRewrite] = None

    @model_validator(mode="after")
    def _one(self) -> "Rewrite":
        _one_of(self, ("strip_prefix", "regex"), "a rewrite")
        return self


class HeaderRules(Model):
    """``set`` replaces, ``add`` appends, ``remove`` drops (applied remove, set, add)."""

    set: dict[HeaderName, HeaderValue] = {}
    add: dict[HeaderName, HeaderValue] = {}
    remove: list[HeaderName] = []


class RouteHeaders(Model):
    """Header rules for the request sent upstream and the response sent back."""

    request: HeaderRules = HeaderRules()
    response: HeaderRules = HeaderRules()


# --- plugins ---------------------------------------------------------------------------

class BasicAuthPlugin(Model):
    """HTTP Basic auth against ``users`` (``{name: password}``)."""

    users: dict[str, str] = Field(min_length=1)
    realm: str = "Restricted"


class BearerAuthPlugin(Model):
    """``Authorization: Bearer`` with one of ``tokens``."""

    tokens: list[str] = Field(min_length=1)
    realm: Optional[str] = None


class ApiKeyPlugin(Model):
    """Keys by name (``{name: key}``), read from ``header`` or else ``query``."""

    keys: dict[str, str] = Field(min_length=1)
    header: HeaderName = "X-API-Key"
    query: Optional[str] = None


class JwtPlugin(Model):
    """Bearer JWTs checked with ``secret`` (HS*), ``public_key_file`` (PEM) or
    ``jwks_file`` (a JSON Web Key Set)."""

    algorithms: list[Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                             "ES256", "ES384", "ES512"]] = Field(min_length=1)
    secret: Optional[str] = None
    public_key_file: Optional[str] = None
    jwks_file: Optional[str] = None
    issuer: Optional[str] = None
    audience: Optional[str] = None
    leeway: float = Field(default=0.0, ge=0)
    claims_to_headers: dict[str, HeaderName] = {}

    @model_validator(mode="after")
    def _one_key(self) -> "JwtPlugin":
        _one_of(self, ("secret", "public_key_file", "jwks_file"), "jwt")
        hs = [a for a in self.algorithms if a.startswith("HS")]
        if self.secret is not None and len(hs) != len(self.algorithms):
            raise ValueError("'secret' works only with HS* algorithms")
        if self.secret is None and hs:
            raise ValueError("HS* algorithms need 'secret'")
        return self


class LimitKey(Model):
    """What a limit counts per: exactly one of these."""

    ip_address: Optional[bool] = None
    header: Optional[HeaderName] = None
    api_key: Optional[bool] = None
    route: Optional[bool] = None

    @model_validator(mode="after")
    def _one(self) -> "LimitKey":
        _one_of(self, ("ip_address", "header", "api_key", "route"), "'per'")
        for name in ("ip_address", "api_key", "route"):
            if getattr(self, name) is False:
                raise ValueError(f"'{name}: false' selects nothing; name the key to count per")
        return self


class RateLimitPlugin(Model):
    """At most ``requests`` per ``window`` seconds per key; more get 429.

    Counted per worker process, or, with ``redis`` (a ``redis://`` URL), once for all
    the workers and instances using that Redis (fixed windows on Redis's clock). While
    Redis cannot answer, ``on_redis_error`` decides: ``open`` admits, ``closed`` answers 429."""

    requests: int = Field(ge=1)
    window: Seconds = 1.0
    per: LimitKey = LimitKey(route=True)
    redis: Optional[str] = Field(None, pattern=r"^rediss?://")
    on_redis_error: Literal["open", "closed"] = "open"


class InflightPlugin(Model):
    """At most ``max`` requests in progress per key; more get 429."""

    max: int = Field(ge=1)
    per: LimitKey = LimitKey(route=True)


class IpPlugin(Model):
    """Client addresses or CIDR ranges: 403 unless allowed (empty allow: all) and not denied."""

    allow: list[str] = []
    deny: list[str] = []


class BodySizePlugin(Model):
    """413 for request bodies over ``max_bytes`` (declared or streamed)."""

    max_bytes: int = Field(ge=0)


class CorsPlugin(Model):
    """CORS: preflights answered 204 (403 for other origins), headers added for allowed origins."""

    allow_origins: list[str] = Field(min_length=1)
    allow_methods: list[str] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    allow_headers: list[str] = []
    expose_headers: list[str] = []
    allow_credentials: bool = False
    max_age: int = Field(default=600, ge=0)


class RequestIdPlugin(Model):
    """An id per request in ``header``, upstream and back; an incoming one is kept when trusted."""

    header: HeaderName = "X-Request-Id"
    trust_incoming: bool = True


class TrafficSplitPlugin(Model):
    """A canary: ``percent`` of the route's requests go to ``cluster`` instead of the
    route's own. With ``sticky_on`` (``client_ip``, ``header:NAME``, ``cookie:NAME``,
    ``query:NAME``, ``path`` or ``uri``) the choice is a hash of that key, so requests
    with the same key always go the same way (in every worker and instance); requests
    without the key are split at random."""

    cluster: str
    percent: float = Field(ge=0, le=100)
    sticky_on: Optional[Annotated[str, Field(pattern=_HASH_ON)]] = None


class CachePlugin(Model):
    """Responses kept in ``storage`` (``memory`` or ``disk``, bounded by ``max_bytes``;
    ``redis`` at ``redis``, shared by workers and instances) and answered from it.

    The origin's ``Cache-Control`` decides (RFC 9111: ``no-store``/``private`` are never
    kept, a request with ``Authorization`` only when the origin allows it); ``ttl``
    seconds of freshness apply to a response with status in ``statuses`` that says
    nothing (0: keep only what the origin allows), and ``stale_while_revalidate`` /
    ``stale_if_error`` seconds when it gives no such window. Bodies over
    ``max_object_bytes`` go through uncached. One request fills an entry while the
    others wait up to ``lock_timeout`` seconds for it. ``status_header`` (null: none)
    tells the client HIT, MISS, STALE, EXPIRED, REVALIDATED or BYPASS.
    """

    storage: Literal["memory", "disk", "redis"] = "memory"
    max_bytes: int = Field(64 << 20, ge=1)
    path: Optional[str] = None
    redis: Optional[str] = Field(None, pattern=r"^rediss?://")
    ttl: int = Field(60, ge=0)
    statuses: list[Annotated[int, Field(ge=200, le=599)]] = [200, 203, 204, 300, 301, 308, 404, 410]
    stale_while_revalidate: int = Field(0, ge=0)
    stale_if_error: int = Field(0, ge=0)
    max_object_bytes: Optional[int] = Field(None, ge=1)
    lock_timeout: Seconds = 5.0
    status_header: Optional[HeaderName] = "X-Cache-Status"

    @model_validator(mode="after")
    def _storage_needs(self) -> "CachePlugin":
        if self.storage == "disk" and not self.path:
            raise ValueError("disk storage needs 'path' (a directory)")
        if self.storage == "redis" and not self.redis:
            raise ValueError("redis storage needs 'redis' (a redis:// URL)")
        if self.path is not None and self.storage != "disk":
            raise ValueError("'path' is for disk storage")
        if self.redis is not None and self.storage != "redis":
            raise ValueError("'redis' is for redis storage")
        return self


class CompressionPlugin(Model):
    """Responses compressed for clients that accept it: ``codings`` in the order preferred
    when the client weighs them equally, at ``level`` (capped at each coding's maximum:
    gzip 9, br 11, zstd 19); bodies declared smaller than ``min_size`` bytes, media
    types not matching ``types`` (``type/subtype``, ``type/*`` or ``*``) and responses
    already encoded pass as they are."""

    codings: list[Literal["zstd", "br", "gzip"]] = Field(["zstd", "br", "gzip"], min_length=1)
    level: int = Field(5, ge=1, le=19)
    min_size: int = Field(20, ge=0)
    types: list[Annotated[str, Field(pattern=r"^(\*|[^/\s]+/[^/\s]+)$")]] = Field(list(DEFAULT_TYPES),
                                                                                 min_length=1)

    @model_validator(mode="after")
    def _once(self) -> "CompressionPlugin":
        if len(set(self.codings)) != len(self.codings):
            raise ValueError("'codings' names a coding twice")
        return self


class MirrorPlugin(Model):
    """A copy of each request (method, path and headers as sent upstream, and a body of
    at most ``max_body`` bytes) goes to ``cluster`` in the background; its answer is
    ignored. At most ``max_inflight`` copies are in progress per worker: more are
    dropped, as are requests with larger bodies (both counted). A copy gets ``timeout``
    seconds in all."""

    cluster: str
    max_body: int = Field(default=65536, ge=0)
    max_inflight: int = Field(default=64, ge=1)
    timeout: Seconds = 5.0


class CircuitBreakerConf(Model):
    """Stop sending requests while they keep failing (a 5xx answer, a failed connection
    or a timeout). It opens when ``failures`` failed within the last ``window`` seconds,
    or, with ``failure_ratio``, when at least ``min_requests`` were made in the window
    and that share of them failed; while open every request is answered 503 at once.
    After ``cooldown`` seconds one probe request goes through (half-open): a success
    closes the breaker, a failure opens it again. State is per worker process."""

    failures: int = Field(default=5, ge=1)
    window: Seconds = 10.0
    failure_ratio: Optional[float] = Field(default=None, gt=0, le=1)
    min_requests: int = Field(default=10, ge=1)
    cooldown: Seconds = 5.0


class PythonPlugin(Model):
    """A ``Plugin`` subclass named ``module:Class``, built with ``options``."""

    plugin: Annotated[str, Field(pattern=_PLUGIN)]
    options: dict[str, Any] = {}


class Plugins(Model):
    """Per-route plugins. They run in this fixed order: request_id, ip, cors, basic_auth,
    bearer_auth, api_key, jwt, rate_limit, inflight, body_size, traffic_split, mirror,
    circuit_breaker, then ``python`` in the order listed; ``cache`` answers after all of them (a hit is never
    served to a request they refuse)."""

    request_id: Optional[RequestIdPlugin] = None
    ip: Optional[IpPlugin] = None
    cors: Optional[CorsPlugin] = None
    basic_auth: Optional[BasicAuthPlugin] = None
    bearer_auth: Optional[BearerAuthPlugin] = None
    api_key: Optional[ApiKeyPlugin] = None
    jwt: Optional[JwtPlugin] = None
    rate_limit: Optional[RateLimitPlugin] = None
    inflight: Optional[InflightPlugin] = None
    body_size: Optional[BodySizePlugin] = None
    python: list[PythonPlugin] = []
    cache: Optional[CachePlugin] = None
    compression: Optional[CompressionPlugin] = None
    traffic_split: Optional[TrafficSplitPlugin] = None
    mirror: Optional[MirrorPlugin] = None
    circuit_breaker: Optional[CircuitBreakerConf] = None


class Route(Model):
    """A match, one action (``proxy``, ``redirect`` or ``respond``), and what to change."""

    name: Optional[str] = None
    listeners: list[str] = []
    priority: int = 0
    match: Match = Match()
    proxy: Optional[ProxyAction] = None
    redirect: Optional[RedirectAction] = None
    respond: Optional[FixedResponse] = None
    rewrite: Optional[Rewrite] = None
    headers: RouteHeaders = RouteHeaders()
    plugins: Plugins = Plugins()

    @model_validator(mode="after")
    def _one_action(self) -> "Route":
        _one_of(self, ("proxy", "redirect", "respond"), "a route")
        return self


# --- clusters --------------------------------------------------------------------------

class BackendConf(Model):
    """An upstream server (``ip:port`` or ``name:port``, resolved at load) and its weight."""

    address: Address
    weight: int = Field(default=1, ge=1)


class HealthCheckConf(Model):
    """Active checks every ``interval`` seconds: a TCP connect, or an HTTP GET whose
    status must be one of ``expected_status`` (and body contain ``expected_body``)."""

    type: Literal["tcp", "http"] = "tcp"
    interval: Seconds = 5.0
    timeout: Seconds = 1.0
    healthy_threshold: int = Field(default=1, ge=1)
    unhealthy_threshold: int = Field(default=1, ge=1)
    path: str = "/"
    host: str = "localhost"
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = [200]
    expected_body: Optional[str] = None


class OutlierConf(Model):
    """Passive health: a backend answering ``consecutive_failures`` times in a row with a
    failed connection or 502/503/504 leaves rotation for ``cooldown`` seconds."""

    consecutive_failures: int = Field(default=5, ge=1)
    cooldown: Seconds = 30.0


class DiscoveryConf(Model):
    """Where backends come from: ``backends`` (static), a ``file`` of ``addr [weight]``
    lines, or ``dns`` (``name`` resolved to addresses on ``port``)."""

    type: Literal["static", "file", "dns"] = "static"
    path: Optional[str] = None
    name: Optional[str] = None
    port: Optional[int] = Field(default=None, ge=1, le=65535)
    refresh: Seconds = 5.0

    @model_validator(mode="after")
    def _needs(self) -> "DiscoveryConf":
        if self.type == "file" and not self.path:
            raise ValueError("file discovery needs 'path'")
        if self.type == "dns" and (not self.name or self.port is None):
            raise ValueError("dns discovery needs 'name' and 'port'")
        return self


class UpstreamTls(Model):
    """TLS to the backends: SNI, verification, a CA file, a client certificate."""

    sni: str = ""
    verify: bool = True
    ca_file: Optional[str] = None
    client_cert: Optional[CertPair] = None


class ClusterTimeouts(Model):
    """Upstream timeouts in seconds; ``read``/``write``/``connect`` expiring answer 504."""

    connect: Seconds = 5.0
    read: Seconds = 60.0
    write: Seconds = 60.0
    idle: Seconds = 60.0


class Cluster(Model):
    """Upstream backends and how to pick one per request.

    ``selection``: ``round_robin`` and ``weighted`` (both weighted round robin),
    ``random``, ``ketama`` (consistent hashing on ``hash_on``), ``least_conn`` (fewest
    requests in flight per weight, in this worker). ``hash_on``: ``client_ip``,
    ``path``, ``uri``, ``header:NAME``, ``query:NAME`` or ``cookie:NAME``.
    ``retries``: how many other backends a refused connection may move on to.
    ``pool_size``: at most this many idle connections to the cluster's backends are
    kept for reuse per worker, the least recently used closed first (nginx's
    ``keepalive N``); it does not limit how many are open. Unset: only
    ``server.upstream_keepalive_pool_size``, the bound of the whole pool, applies.
    """

    backends: list[BackendConf] = []
    selection: Literal["round_robin", "weighted", "random", "ketama", "least_conn"] = "round_robin"
    hash_on: Optional[Annotated[str, Field(pattern=_HASH_ON)]] = None
    health_check: Optional[HealthCheckConf] = None
    outlier: Optional[OutlierConf] = None
    discovery: DiscoveryConf = DiscoveryConf()
    tls: Optional[UpstreamTls] = None
    timeouts: ClusterTimeouts = ClusterTimeouts()
    retries: int = Field(default=2, ge=0)
    circuit_breaker: Optional[CircuitBreakerConf] = None
    pool_size: Optional[int] = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> "Cluster":
        if self.discovery.type == "static" and not self.backends:
            raise ValueError("a static cluster needs at least one backend")
        if self.discovery.type != "static" and self.backends:
            raise ValueError(f"'backends' and {self.discovery.type} discovery exclude each other")
        if self.selection == "ketama" and self.hash_on is None:
            raise ValueError("ketama selection needs 'hash_on'")
        return self


# --- the rest --------------------------------------------------------------------------

class TraceConf(Model):
    """Per-request traces: a request carrying ``X-Propylon-Trace: <token>``, or a
    ``sample`` fraction of all requests, is logged with the hooks that ran and their
    times, each upstream attempt and the final status (``propylon.trace``); the last
    ``keep`` are served at ``/traces`` on the metrics address to
    ``Authorization: Bearer <token>`` only (nothing is shown without a ``token``)."""

    token: Optional[str] = Field(None, min_length=16)
    sample: float = Field(0.0, ge=0.0, le=1.0)
    keep: int = Field(100, ge=0, le=10000)

    @model_validator(mode="after")
    def _something_traced(self) -> "TraceConf":
        if self.token is None and self.sample == 0.0:
            raise ValueError("'trace' needs a 'token' or a 'sample' above 0: otherwise nothing is traced")
        return self


class MetricsConf(Model):
    """The built-in ``propylon_*`` metrics, and the process's Prometheus registry served
    on ``address`` at ``/metrics``. Request series carry the route's name as their
    ``service`` label (the listener's name for a request no route took) and the backend
    as ``upstream``; with ``server.threads`` > 1 a scrape sums every worker. ``trace``:
    per-request traces, kept and served at ``/traces`` on the same address."""

    address: Address
    trace: Optional[TraceConf] = None


class AccessLogConf(Model):
    """One line per request: ``json`` (the ``fields`` chosen) or nginx's ``combined``
    format, appended to the file ``path`` (relative to the configuration file) or
    written to ``stdout``. In JSON lines, ``service`` is the route's name."""

    format: Literal["json", "combined"] = "json"
    path: str = Field("stdout", min_length=1)
    fields: Optional[list[Literal[FIELDS]]] = Field(None, min_length=1)  # type: ignore[valid-type]
    flush_interval: Seconds = 0.5

    @model_validator(mode="after")
    def _fields_for_json(self) -> "AccessLogConf":
        if self.fields is not None and self.format != "json":
            raise ValueError("'fields' choose what a json line carries; the combined format is fixed")
        return self

    def chosen_fields(self) -> tuple[str, ...]:
        """The JSON fields: those given, else the default ones and the route (``service``)."""
        return tuple(self.fields) if self.fields is not None else (*DEFAULT_FIELDS, "service")


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminConf(Model):
    """The admin API and dashboard: loopback only unless a bearer ``token`` is set.

    ``history`` is how many applied versions are kept (in ``.propylon-state`` beside
    the file, with the last good copy and the version each worker runs).
    """

    address: Address = "127.0.0.1:9180"
    token: Optional[str] = Field(None, min_length=16)
    history: int = Field(20, ge=1, le=1000)

    @model_validator(mode="after")
    def _token_off_loopback(self) -> "AdminConf":
        if self.token is None and not _is_loopback(self.address):
            raise ValueError(f"a 'token' is required to serve the admin API on {self.address} "
                             "(not a loopback address)")
        return self


class ConfigStoreConf(Model):
    """Share applied configurations between instances through Redis: each apply is
    stored under ``key`` and announced; the other instances apply it and write it to
    their file. An instance that loses Redis keeps serving and catches up when it returns."""

    redis: str = Field(pattern=r"^rediss?://")
    key: str = Field("propylon:gateway:config", min_length=1)


class GatewayConfig(Model):
    """A whole gateway file."""

    include: list[str] = []
    server: dict[str, Any] = {}
    listeners: list[Listener] = Field(min_length=1)
    routes: list[Route] = []
    clusters: dict[str, Cluster] = {}
    metrics: Optional[MetricsConf] = None
    access_log: Optional[AccessLogConf] = None
    admin: Optional[AdminConf] = None
    config_store: Optional[ConfigStoreConf] = None
