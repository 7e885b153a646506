"""The built-in hit detectors: how a mail-security scanner's request to a tracked link is told from a person's.

Scanners (Microsoft Defender Safe Links, Proofpoint, Mimecast, Barracuda...) fetch every link and image of an email
as it arrives, before anyone reads it. Each detector here looks at one sign; a hit any of them flags is recorded on
the run as filtered and counts as no open or click (docs/phishing.md#scanner-filtering). Vendors add detectors
with ``register_hit_detectors``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from campaignkit.core.interfaces import Hit, HitDetector

# Substrings (case aside) of user agents that scanners, link previewers and scripts send; people's browsers do not.
KNOWN_SCANNERS = (
    "barracuda", "proofpoint", "mimecast", "safelinks", "microsoft office protection", "bingpreview",
    "urldefense", "forcepoint", "zscaler", "symantec", "trend micro", "sophos", "fireeye", "paloalto",
    "checkpoint", "cisco", "ironport", "spamtitan", "python-requests", "python-urllib", "curl/", "wget/",
    "go-http-client", "okhttp", "java/", "libwww-perl", "headlesschrome", "phantomjs", "slackbot",
    "skypeuripreview", "whatsapp", "facebookexternalhit", "googleimageproxy",
)


class ScannerUserAgent(HitDetector):
    """scanner_user_agent: a user agent on the built-in list or the campaign's ``scanners.user_agents``, or none."""

    name = "scanner_user_agent"

    def classify(self, hit: Hit) -> str | None:
        agent = hit.user_agent.lower()
        if not agent.strip():
            return "no user agent"
        extra = tuple(str(item).lower() for item in hit.rules.get("user_agents") or ())
        found = next((known for known in (*KNOWN_SCANNERS, *extra) if known and known in agent), None)
        return f"scanner user agent ({found})" if found else None


class ScannerNetwork(HitDetector):
    """scanner_network: a client address inside one of the campaign's ``scanners.networks``."""

    name = "scanner_network"

    def classify(self, hit: Hit) -> str | None:
        if not hit.client_ip or not hit.rules.get("networks"):
            return None
        try:
            address = ipaddress.ip_address(hit.client_ip)
        except ValueError:
            return None
        for network in _networks(tuple(hit.rules["networks"])):
            if address.version == network.version and address in network:
                return f"scanner network {network}"
        return None


class TooSoon(HitDetector):
    """too_soon: a hit within ``scanners.seconds_after_delivery`` of the email going out: nobody reads that fast."""

    name = "too_soon"

    def classify(self, hit: Hit) -> str | None:
        seconds = float(hit.rules.get("seconds_after_delivery") or 0)
        if hit.sent_at is None or seconds <= 0 or hit.event in ("reported", "training_started", "training_finished"):
            return None
        elapsed = (hit.at - hit.sent_at).total_seconds()
        return f"{max(elapsed, 0):.0f} s after sending" if elapsed < seconds else None


class HeadRequest(HitDetector):
    """head_request: a HEAD request, which checks a link without opening it."""

    name = "head_request"

    def classify(self, hit: Hit) -> str | None:
        return "HEAD request" if hit.method.upper() == "HEAD" else None


class NoPageLoad(HitDetector):
    """no_page_load: credentials sent without the landing page having been loaded, or, with
    ``scanners.confirm_clicks``, a click the page's script did not confirm."""

    name = "no_page_load"

    def classify(self, hit: Hit) -> str | None:
        if hit.event == "submitted" and not hit.page_loaded:
            return "form sent without loading its page"
        if hit.event == "clicked" and hit.rules.get("confirm_clicks") and not hit.confirmed:
            return "click not confirmed by the page's script"
        return None


@lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


BUILT_IN = [ScannerUserAgent, ScannerNetwork, TooSoon, HeadRequest, NoPageLoad]
