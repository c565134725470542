"""A campaign prepared once per worker: compiled templates, static MIME parts, DKIM signers,
keys.  Building one recipient's message is then a render + byte assembly + signature."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lunamail.lib import tokens
from lunamail.lib.dkim import Algorithm, DkimSigner, MultiSigner, signing_domain
from lunamail.lib.mime import Attachment, CampaignMime, extra_header_problems, make_message_id
from lunamail.lib.templating import RenderBound, RenderProblem, compile_campaign
from lunamail.lib.tracklinks import TrackingLinks, insert_pixel
from lunamail.lib.verp import encode_return_path
from lunamail.ports.deps import Deps
from lunamail.ports.mailer import OutgoingMail
from lunamail.services.delivery import domains


class CampaignRenderFailed(RuntimeError):
    """A recipient's message could not be rendered (a sandbox refusal or a broken bound:
    CPU time, output size); the message names the campaign, the account and the bound."""


_CACHE: OrderedDict[tuple[str, str, float], PreparedCampaign] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def signers_for(deps: Deps, account: str, from_domain: str) -> list[DkimSigner]:
    """DKIM signers for the From domain, or for its closest parent with a key (RSA first,
    then e.g. ed25519): the account's sending domain's keys, else the keys the ``dkim``
    setting names (files the operator manages)."""
    own = domains.signers(deps, account, from_domain)
    if own:
        return own
    out = []
    domain = signing_domain((k.domain for k in deps.settings.dkim), from_domain)
    for k in deps.settings.dkim:
        if k.domain.lower().rstrip(".") == domain:
            pem = Path(k.key_file).read_bytes()
            if k.algorithm not in ("rsa-sha256", "ed25519-sha256"):
                raise ValueError(f"DKIM key for {k.domain}: unknown algorithm {k.algorithm!r}")
            algorithm: Algorithm = "rsa-sha256" if k.algorithm == "rsa-sha256" else "ed25519-sha256"
            out.append(DkimSigner(k.domain, k.selector, pem, algorithm=algorithm))
    return out


class PreparedCampaign:
    def __init__(self, deps: Deps, account: str, campaign: str, content: dict[str, Any],
                 *, test: bool = False) -> None:
        self.account = account
        self.campaign = campaign
        self.test = test
        base = deps.settings.base_url.rstrip("/")
        self._unsub_base = f"{base}/u/"
        self._view_base = f"{base}/v/"
        self._unsub_key = deps.secrets.key(account, tokens.UNSUBSCRIBE)
        self._view_key = deps.secrets.key(account, tokens.VIEW)
        self._verp_key = deps.secrets.key(account, tokens.VERP)
        from_email = str(content["from_email"])
        self._from_domain = domain_of(from_email)
        self._bounce_domain = deps.settings.bounce_domain or self._from_domain
        self._compiled = compile_campaign(
            str(content["subject"]), str(content["html"]), content.get("text") or None
        )
        self._campaign_ctx = {"id": campaign, "name": content.get("name", ""),
                              "subject": content.get("subject", "")}
        extra = dict(content.get("headers") or {})
        problems = extra_header_problems(extra)
        if problems:
            raise ValueError("; ".join(problems))
        headers = {"X-Lunamail-Campaign": campaign, **extra}
        if test:
            headers["X-Lunamail-Test"] = "1"
        # List-Id names the list (stable across campaigns, RFC 2919); Feedback-ID follows
        # Gmail's campaign:customer:mail-type:sender-id shape.  Both are per recipient.
        self._list_domain = self._from_domain
        self._sender_id = deps.settings.feedback_sender_id or "lunamail"
        self._mime = CampaignMime(
            from_name=str(content.get("from_name") or ""),
            from_email=from_email,
            reply_to=content.get("reply_to") or None,
            extra_headers=headers,
            attachments=[
                Attachment(a["filename"], deps.blobs.get(a["key"]),
                           a.get("content_type") or "application/octet-stream")
                for a in content.get("attachments") or []
            ],
            bounce_domain=self._bounce_domain,
        )
        signers = signers_for(deps, account, self._from_domain)
        # Several keys (RSA + ed25519) share one parse and one body hash.
        self._signer: DkimSigner | MultiSigner | None = (
            None if not signers else signers[0] if len(signers) == 1 else MultiSigner(signers))
        # Tracking is on unless the campaign turns it off; test sends are never tracked.
        links = TrackingLinks(base, deps.secrets.key(account, tokens.TRACK), account, campaign)
        clicks, opens = content.get("track_clicks"), content.get("track_opens")
        clicks = deps.settings.track_clicks if clicks is None else bool(clicks)
        opens = deps.settings.track_opens if opens is None else bool(opens)
        self._clicks = links if clicks and not test else None
        self._opens = links if opens and not test else None
        self._now = deps.clock.now

    def _rewriter(self, email: str, now: float) -> Callable[[str, int], str]:
        """Click tracking for the author's links; our own pages (web view) stay as they are."""
        assert self._clicks is not None
        track = self._clicks.rewriter(email, now)
        own = self._view_base

        def rewrite(url: str, index: int) -> str:
            return url if url.startswith(own) else track(url, index)

        return rewrite

    def build(self, r: dict[str, Any]) -> OutgoingMail:
        email = r["email"]
        acct, camp = self.account, self.campaign
        lst = str(r.get("list") or "")
        unsubscribe_url = self._unsub_base + tokens.make_token(
            self._unsub_key, acct, "u", camp, r.get("list", ""), email)
        view_url = self._view_base + tokens.make_token(self._view_key, acct, "v", camp, email)
        sub = {"email": email, "name": r.get("name") or "", "fields": r.get("fields") or {}}
        now = self._now()
        try:
            out = self._compiled.render(
                sub, unsubscribe_url=unsubscribe_url, view_in_browser_url=view_url,
                campaign=self._campaign_ctx, link_rewriter=self._rewriter(email, now) if self._clicks else None)
        except RenderProblem as e:  # the batch fails (and is retried) with the campaign named
            bound = f" (bound: {e.bound})" if isinstance(e, RenderBound) else ""
            raise CampaignRenderFailed(f"campaign {camp} of account {acct} does not render: {e}{bound}") from e
        html = insert_pixel(out.html, self._opens.pixel_url(email, now)) if self._opens else out.html
        mail_from = encode_return_path(self._verp_key, account=acct, campaign=camp, email=email,
                                       domain=self._bounce_domain)
        data = self._mime.build(
            to_email=email, to_name=sub["name"],
            subject=("[Test] " + out.subject) if self.test else out.subject,
            html=html, text=out.text, unsubscribe_url=unsubscribe_url,
            message_id=make_message_id(self._from_domain), date=now,
            return_path_token=mail_from.partition("@")[0],
            list_id=f"{lst or 'test'}.{acct}.{self._list_domain}",
            feedback_id=f"{camp}:{lst or 'test'}:{acct}:{self._sender_id}",
        )
        if self._signer is not None:
            data = self._signer.sign(data)
        return OutgoingMail(mail_from=mail_from, rcpt_to=email, data=data, ref=email)


def prepared_campaign(deps: Deps, account: str, campaign: str, meta: dict[str, Any]) -> PreparedCampaign:
    """The campaign compiled once per process (an LRU of recent campaigns)."""
    key = (account, campaign, float(meta.get("started_at", 0)))
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    prepared = PreparedCampaign(deps, account, campaign, meta["content"])
    with _CACHE_LOCK:
        _CACHE[key] = prepared
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return prepared


