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

import hashlib
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Networks = tuple[IPv4Network | IPv6Network, ...]

# A proxy chain longer than this is not a real deployment; the header is read from the right
# (the hops we trust appended there) and only this many characters of it.
MAX_HOPS = 16
MAX_HEADER_CHARS = 1024
# One IPv6 subscriber gets a whole /64 (RFC 6177): limits keyed on single IPv6 addresses
# would give an abuser 2^64 fresh buckets.
IPV6_BUCKET_PREFIX = 64
# Rasa message metadata under which the gateway passes the client's pseudonymous key to the
# action server (the status look-up limit per client address, actions/status.py).
CLIENT_METADATA_KEY = "dvc_client"


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


def bucket(address: str | None) -> str:
    """The rate-limit bucket of a client address: itself for IPv4 (also IPv4-mapped IPv6),
    its /64 for IPv6, the text as it is for anything else (a Unix socket, "?")."""
    if not address:
        return "?"
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        host_bits = 128 - IPV6_BUCKET_PREFIX
        return str(IPv6Network((int(ip) >> host_bits << host_bits, IPV6_BUCKET_PREFIX)))
    return str(ip)


def client_key(address: str | None) -> str:
    """A pseudonymous, fixed-length key for a client's bucket (what the action server's
    look-up limit stores): Rasa keeps message metadata in its tracker store for as long as
    the conversation, and an address there would be personal data kept for no reason."""
    digest = hashlib.sha256(f"dvc-client:{bucket(address)}".encode()).hexdigest()
    return digest[:32]
