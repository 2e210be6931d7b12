"""The citizen's own address, also behind the reverse proxy the deployment guide recommends.

Rate limits and logs are keyed on the client address. Behind a proxy every request's peer
is the proxy, so all citizens would share one bucket and one abuser would block them all.
`X-Forwarded-For` is read only when the peer is one of `TRUSTED_PROXIES`: anyone else can
write that header, and trusting it would let a client pick a fresh address per request.

Hand-written rather than aiohttp-remotes: its strict middleware answers 400 to a direct
client that sends the header (we ignore it instead), and its filtered one trusts the header
without checking who sent it.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

Networks = tuple[IPv4Network | IPv6Network, ...]

# A proxy chain longer than this is not a real deployment; the header is read from the right
# (the hops we trust appended there) and only this many characters of it.
MAX_HOPS = 16
MAX_HEADER_CHARS = 1024


def parse_networks(raw: str) -> Networks:
    """`TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks; blank trusts nobody."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {item!r} is not an address or a CIDR block "
                             "(e.g. 10.0.0.0/8, 127.0.0.1)") from exc
    return tuple(networks)


def _trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str:
    """The first untrusted hop from the right of `X-Forwarded-For`, when the peer is trusted.

    Entries our proxies appended are skipped; the first one no trusted proxy vouches for is
    the client (what it wrote to the left of that is its own claim and ignored). A malformed
    entry stops the walk at the last trusted hop, so garbage never becomes a bucket key.
    """
    address = peer or "?"
    if not forwarded_for or not trusted or not _trusted(address, trusted):
        return address
    hops = forwarded_for[-MAX_HEADER_CHARS:].split(",")[-MAX_HOPS:]
    for hop in reversed(hops):
        hop = hop.strip()
        try:
            ip_address(hop)
        except ValueError:
            return address
        address = hop
        if not _trusted(hop, trusted):
            return hop
    return address
