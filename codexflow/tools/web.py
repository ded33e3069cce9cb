"""`kind: web` spec tools: fetch a page over HTTP(S), only from the hosts the spec allows."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from codexflow.errors import ToolError
from codexflow.spec.models import WebToolSpec
from codexflow.tools.context import ToolContext
from codexflow.tools.files import cap_text
from codexflow.tools.refusal import ToolRefused
from codexflow.tools.registry import Tool

FETCH_LIMIT = 2 << 20
TIMEOUT = 30


def host_allowed(url: str, allow_hosts: list[str]) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.username:
        return False
    return parsed.hostname.lower().rstrip(".") in {h.lower().rstrip(".") for h in allow_hosts}


class _CheckRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a new request: it must go to an allowed host too."""

    def __init__(self, allow_hosts: list[str]) -> None:
        self.allow_hosts = allow_hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not host_allowed(newurl, self.allow_hosts):
            raise ToolRefused(f"refused: redirect to {newurl!r}, whose host is not allowed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, allow_hosts: list[str]) -> str:
    if not host_allowed(url, allow_hosts):
        raise ToolRefused(f"refused: {url!r} is not on an allowed host ({', '.join(allow_hosts)})")
    # No proxies from the environment: they would see (and could change) every request.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _CheckRedirects(allow_hosts)
    )
    request = urllib.request.Request(url, headers={"User-Agent": "codexflow-web-fetch"})
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            data = response.read(FETCH_LIMIT + 1)
            status = response.status
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise ToolError(f"HTTP {exc.code} from {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ToolError(f"could not fetch {url}: {exc}") from None
    text = data[:FETCH_LIMIT].decode(charset, "replace")
    if len(data) > FETCH_LIMIT:
        text += "\n[... truncated ...]"
    return cap_text(f"HTTP {status}\n{text}")


def web_tool(name: str, spec: WebToolSpec) -> Tool:
    """web_fetch, limited to the spec's allow_hosts."""
    hosts = list(spec.allow_hosts)

    def run(ctx: ToolContext, arguments: dict[str, Any]) -> str:
        url = arguments.get("url")
        if not isinstance(url, str) or set(arguments) != {"url"}:
            raise ToolError("expected exactly one argument: url (a string)")
        return fetch(url, hosts)

    return Tool(
        name=name,
        description=f"Fetch a web page (GET) from one of: {', '.join(hosts)}.",
        parameters={
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "http(s) URL on an allowed host"}
            },
            "required": ["url"],
            "additionalProperties": False,
        },
        run=run,
        approval=spec.approval,
    )
