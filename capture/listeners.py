"""Where the proxy listens and where it forwards: parsing the `listen` and `upstream` settings
(errors name those parameters; the CLI says its flags).

Kept free of mitmproxy imports so argument errors are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from capture.errors import CaptureError

DEFAULT_REVERSE_PORT = 8081
DEFAULT_FORWARD_PORT = 8080


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening socket: reverse to `upstream` (origin, plus a path `prefix` mitmproxy's
    mode specs can't hold), or the forward proxy when `upstream` is None."""

    host: str
    port: int
    upstream: str | None = None
    prefix: str = ""

    @property
    def spec(self) -> str:
        where = f"[{self.host}]" if ":" in self.host else self.host
        mode = f"reverse:{self.upstream}" if self.upstream else "regular"
        return f"{mode}@{where}:{self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 as `[::1]:PORT`."""
    value = text.strip()
    host, port = "127.0.0.1", value
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise CaptureError(f"listen {text!r}: expected [IPv6]:PORT", params=("listen",))
        host, port = value[1:end], value[end + 2 :]
    elif ":" in value:
        host, port = value.rsplit(":", 1)
        host = host or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise CaptureError(f"listen {text!r}: expected HOST:PORT with a port in 0..65535",
                           params=("listen",))
    return host, int(port)


def parse_upstream(url: str) -> tuple[str, str]:
    """`(origin, path prefix)` of an upstream URL such as `https://api.anthropic.com` or
    `http://10.0.0.5:8000/v1` (prefix `/v1`)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CaptureError(
            f"upstream {url!r}: expected an http(s) URL such as https://api.anthropic.com",
            params=("upstream",),
        )
    if parts.query or parts.fragment or parts.username:
        raise CaptureError(f"upstream {url!r}: give scheme, host, port and path only",
                           params=("upstream",))
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin, parts.path.rstrip("/")


def plan(upstreams: list[str], listen: list[str], *, forward: bool) -> list[Listener]:
    """Listeners for the command line: reverse listeners pair `--listen` with `--upstream` in
    order (defaults 127.0.0.1:8081, 8082, …); forward mode takes one `--listen`."""
    addrs = [parse_listen(x) for x in listen]
    if forward:
        if upstreams:
            raise CaptureError("forward takes no upstream: agents choose their own hosts",
                               params=("forward", "upstream"))
        if len(addrs) > 1:
            raise CaptureError("forward takes one listen address",
                               params=("forward", "listen"))
        host, port = addrs[0] if addrs else ("127.0.0.1", DEFAULT_FORWARD_PORT)
        return [Listener(host, port)]
    if not upstreams:
        raise CaptureError("give at least one upstream URL, or forward",
                           params=("upstream", "forward"))
    if len(addrs) > len(upstreams):
        raise CaptureError(
            f"{len(addrs)} listen addresses for {len(upstreams)} upstream URLs; give one "
            "listen address per upstream URL (or fewer, the rest get default ports)",
            params=("listen", "upstream"),
        )
    used = {port for _, port in addrs}
    out: list[Listener] = []
    next_port = DEFAULT_REVERSE_PORT
    for i, url in enumerate(upstreams):
        origin, prefix = parse_upstream(url)
        if i < len(addrs):
            host, port = addrs[i]
        else:
            while next_port in used:
                next_port += 1
            host, port = "127.0.0.1", next_port
            used.add(port)
        out.append(Listener(host, port, origin, prefix))
    return out
