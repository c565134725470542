"""HTTPS fetches for SNS: signing certificates and subscription confirmations.

The SNS verifier's trust rests on this fetch: the URL's host is checked against
the SNS host pattern first, and then TLS with certificate and host-name
verification proves the bytes came from that host.  So: https only, the
system's default verified TLS context, no redirects (a redirect could lead off
the checked host), a timeout, and a size cap (a certificate is ~2 KB; a
confirmation reply is a short XML document).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlsplit

__all__ = ["FetchError", "HttpsFetcher"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 64 * 1024


class FetchError(Exception):
    """The URL could not be fetched safely (scheme, redirect, status, size, network)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        raise FetchError("redirects are not followed")


class HttpsFetcher:
    """``fetcher(url) -> bytes`` over verified HTTPS; usable as ``SnsVerifier(fetch_cert=...)``
    and as the subscription confirmation fetch."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context or ssl.create_default_context()),
            _NoRedirects(),
        )

    def __call__(self, url: str) -> bytes:
        if urlsplit(url).scheme != "https":
            raise FetchError("only https URLs are fetched")
        request = urllib.request.Request(url, headers={"User-Agent": "lunamail-sns/1"})
        try:
            response: IO[bytes]
            with self._opener.open(request, timeout=self.timeout) as response:
                status = getattr(response, "status", 200)
                if status != 200:
                    raise FetchError(f"HTTP {status}")
                body = response.read(self.max_bytes + 1)
        except FetchError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(f"fetch failed: {exc}") from None
        if len(body) > self.max_bytes:
            raise FetchError(f"response exceeds {self.max_bytes} bytes")
        return body
