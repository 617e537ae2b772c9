"""The proxy configuration file (YAML or JSON), validated with pydantic, and its start-up checks.

```yaml
compiled: topology.aegis        # or  topology: topology.yaml  (compiled at start); relative to this file
engine: private                 # private: an Engine per process; shared: one SharedEngine segment
control: 127.0.0.1:18900        # control + /metrics endpoint (loopback)
servers:                        # edge servers run here: client listener, forwarding listener, processes
  l1-d1-s1: {listen: 127.0.0.1:18001, forward: 127.0.0.1:18101, workers: 1}
zones:                          # topology zone -> origin address (family of the egress = its family)
  shop.example: {origin: 127.0.0.1:19000, ports: [443]}
stand_ins:                      # dedicated IP (topology text) -> a local address to bind instead
  192.0.2.10: 127.0.2.10
  2001:db8:a::/48: "::1"
source_port_range: [20000, 20015]   # optional: IP_LOCAL_PORT_RANGE per egress socket
```

``check_config`` holds the file to the topology at start-up: every server, zone and dedicated IP it
needs exists, every dedicated IP that a configured zone can egress from has a stand-in of the same
family, and every stand-in can be bound here (so it is an address of this host).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..compiled import CompiledTopology
from ..errors import AegisError


class ProxyConfigError(AegisError):
    """A proxy configuration that cannot run (names the field and what is wrong)."""


def parse_hostport(text: str) -> tuple[str, int]:
    """``127.0.0.1:80`` or ``[::1]:80`` -> (host, port), the host a literal IP address."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not ADDRESS:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    return host, int(port)


def format_hostport(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ServerConfig(_Strict):
    listen: str
    forward: str
    workers: int = Field(1, ge=1, le=256)

    @field_validator("listen", "forward")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_hostport(v)
        return v


class ZoneConfig(_Strict):
    origin: str
    ports: list[int] = Field(default_factory=lambda: [443])

    @field_validator("origin")
    @classmethod
    def _addr(cls, v: str) -> str:
        if parse_hostport(v)[1] == 0:
            raise ValueError("origin port must not be 0")
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= p <= 65535 for p in v):
            raise ValueError("ports must be a non-empty list of integers in [1, 65535]")
        return v

    @property
    def origin_addr(self) -> tuple[str, int]:
        return parse_hostport(self.origin)

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.origin_addr[0]).version


class Timeouts(_Strict):
    handshake: float = Field(5.0, gt=0)  # client head, PROXY header, hop reply
    connect: float = Field(3.0, gt=0)  # to the origin or the egress server
    idle: float = Field(30.0, gt=0)  # no byte either way for this long closes a relay


class ProxyConfig(_Strict):
    compiled: str | None = None
    topology: str | None = None
    engine: Literal["private", "shared"] = "private"
    control: str = "127.0.0.1:18900"
    run_dir: str | None = None
    servers: dict[str, ServerConfig]
    zones: dict[str, ZoneConfig]
    stand_ins: dict[str, str]
    source_port_range: list[int] | None = None  # [low, high]
    timeouts: Timeouts = Field(default_factory=lambda: Timeouts(handshake=5.0, connect=3.0, idle=30.0))
    base_dir: str = "."  # where relative paths are resolved (the config file's folder)

    @model_validator(mode="after")
    def _one_source(self) -> ProxyConfig:
        if (self.compiled is None) == (self.topology is None):
            raise ValueError(
                "give exactly one of 'compiled' (a compiled file) or 'topology' (a topology file)"
            )
        if self.source_port_range is not None:
            r = self.source_port_range
            if len(r) != 2 or not 1 <= r[0] <= r[1] <= 65535:
                raise ValueError("source_port_range must be [low, high] with 1 <= low <= high <= 65535")
        parse_hostport(self.control)
        return self

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q


def load_proxy_config(path: str | Path) -> ProxyConfig:
    """Read and validate a config file (``.yaml``/``.yml``/``.json``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProxyConfigError(f"{p}: cannot read proxy config: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ProxyConfigError(f"{p}: cannot parse proxy config: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ProxyConfigError(f"{p}: proxy config must be a mapping")
    data.setdefault("base_dir", str(p.resolve().parent))
    return config_from_dict(data, str(p))


def config_from_dict(data: dict[str, object], where: str = "proxy config") -> ProxyConfig:
    try:
        return ProxyConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ProxyConfigError(f"{where}: {loc}: {err['msg']}") from None


def _bindable(addr: str) -> str | None:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_config(cfg: ProxyConfig, compiled: CompiledTopology) -> None:
    """Hold the config to the topology and to this host; raise ``ProxyConfigError`` naming the
    first problem."""
    server_index = compiled.server_index
    for sid in cfg.servers:
        if sid not in server_index:
            raise ProxyConfigError(f"servers.{sid}: not a server of the topology")
    addrs: dict[str, str] = {}
    for sid, sc in cfg.servers.items():
        for kind in ("listen", "forward"):
            a = parse_hostport(getattr(sc, kind))
            key = format_hostport(a)
            if a[1] != 0 and key in addrs:
                raise ProxyConfigError(f"servers.{sid}.{kind}: {key} is also {addrs[key]}")
            addrs[key] = f"servers.{sid}.{kind}"
    zone_index = compiled.zone_index
    zone_pool = compiled["zone_pool"]
    ip_pool, ip_family, ips = compiled["ip_pool"], compiled["ip_family"], compiled.ips
    canon = {}
    for k, v in cfg.stand_ins.items():
        try:
            net = ipaddress.ip_network(k, strict=True)
            stand = ipaddress.ip_address(v)
        except ValueError as exc:
            raise ProxyConfigError(f"stand_ins.{k}: {exc}") from None
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        if text not in compiled.ips:
            raise ProxyConfigError(f"stand_ins.{k}: not a dedicated IP of the topology")
        if stand.version != net.version:
            raise ProxyConfigError(
                f"stand_ins.{k}: stand-in {v} is IPv{stand.version}, the address IPv{net.version}"
            )
        why = _bindable(str(stand))
        if why is not None:
            raise ProxyConfigError(f"stand_ins.{k}: stand-in {v} cannot be bound here ({why})")
        canon[text] = str(stand)
    for zone, zc in cfg.zones.items():
        if zone not in zone_index:
            raise ProxyConfigError(f"zones.{zone}: not a zone of the topology's zones map")
        pool = int(zone_pool[zone_index[zone]])
        for i in range(len(ips)):
            if int(ip_pool[i]) == pool and int(ip_family[i]) == zc.family and ips[i] not in canon:
                raise ProxyConfigError(
                    f"stand_ins: dedicated IP {ips[i]} (pool {compiled.pools[pool]}, zone {zone}) has no stand-in"
                )


def stand_in_table(cfg: ProxyConfig, compiled: CompiledTopology) -> list[str | None]:
    """Stand-in address per IP index of the compiled topology (None: not configured)."""
    out: list[str | None] = [None] * len(compiled.ips)
    index = {ip: i for i, ip in enumerate(compiled.ips)}
    for k, v in cfg.stand_ins.items():
        net = ipaddress.ip_network(k)
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        out[index[text]] = str(ipaddress.ip_address(v))
    return out
