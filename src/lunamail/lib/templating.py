"""Campaign personalisation: compile once, render per recipient, fast and sandboxed.

Templates are written by tenants, so they run in Jinja2's immutable sandbox
and are also checked statically when a draft is saved: any attribute or key
starting with ``_`` (the road to ``__class__``/``__globals__``), unknown
variables and misspelt ``subscriber``/``campaign`` attributes are refused
with the part, line and a message.  The same sandbox still guards rendering,
so anything the static check misses fails at render time instead of leaking.

Policy for missing data: a *variable* name must be known at save time, but a
missing subscriber *field* renders as an empty string (fields vary between
subscribers and one missing value must not fail a send half-way through a
list); use ``| default("there")`` for a fallback.  ``None`` renders as "".

Compilation happens once per campaign (the naive per-recipient
``Template(src)`` is ~50x slower).  Link rewriting for click tracking is a
single regex pass over the rendered HTML: at compile time every trackable
``<a href>`` in the source is wrapped in private-use marker characters
carrying its link index, so indexes are stable per template link no matter
what conditionals render, and no HTML parsing happens per recipient.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape as _escape_attr
from html import unescape
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import ChainableUndefined, Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lunamail.lib.html2text import html_to_text

__all__ = [
    "MAX_SEQUENCE",
    "PARTS",
    "VARIABLES",
    "CompiledCampaign",
    "Link",
    "LinkRewriter",
    "RenderProblem",
    "Rendered",
    "TemplateProblem",
    "compile_campaign",
    "extract_links",
]

PARTS = ("subject", "html", "text")
#: Top-level names a campaign template may use.
VARIABLES = frozenset({"subscriber", "unsubscribe_url", "view_in_browser_url", "campaign"})
_KNOWN_ATTRS: Mapping[str, frozenset[str]] = {
    "subscriber": frozenset({"email", "name", "fields"}),
    "campaign": frozenset({"id", "subject", "name"}),
}
#: Largest string/list a template may build with ``*`` (and the largest ``**`` exponent / 100):
#: constant folding at compile time would otherwise let ``{{ "x" * 10**10 }}`` exhaust memory.
MAX_SEQUENCE = 100_000

LinkRewriter = Callable[[str, int], str]


class TemplateProblem(ValueError):
    """A template that cannot be used: which part, which line (1-based; None if unknown), why."""

    def __init__(self, part: str, line: int | None, message: str) -> None:
        where = f"{part}, line {line}" if line else part
        super().__init__(f"{where}: {message}")
        self.part = part
        self.line = line
        self.message = message


class RenderProblem(RuntimeError):
    """Rendering one recipient failed (e.g. the sandbox refused an operation)."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """A trackable link of the HTML template: its stable index, its ``href`` as written
    (entities decoded; may contain template expressions) and its visible text."""

    index: int
    url: str
    text: str


# ---------------------------------------------------------------- the sandbox


class _Undefined(ChainableUndefined):
    """Missing data renders as "" and chains (``a.b.c``); but a value the sandbox refused
    raises when printed instead of silently printing nothing."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return ""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_DICT_METHODS = frozenset({"get", "items", "keys", "values"})


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus: keys before attributes on dicts (a field called
    ``items`` is the field, and it skips a costly AttributeError per lookup), and size
    limits on ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                if attribute not in _DICT_METHODS:
                    return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_SEQUENCE
                ):
                    raise SecurityError(f"result longer than {MAX_SEQUENCE} is not allowed")
            return operator.mul(left, right)
        if isinstance(left, int) and isinstance(right, int) and abs(right) > MAX_SEQUENCE // 100:
            raise SecurityError(f"exponent above {MAX_SEQUENCE // 100} is not allowed")
        return operator.pow(left, right)


def _make_env(autoescape: bool) -> _Sandbox:
    env = _Sandbox(
        autoescape=autoescape,
        undefined=_Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.pop("lipsum", None)
    return env


_HTML_ENV = _make_env(autoescape=True)
_TEXT_ENV = _make_env(autoescape=False)  # subject and text: no HTML escaping
_ALLOWED_NAMES = VARIABLES | frozenset(_HTML_ENV.globals)
_GLOBALS: dict[str, Any] = dict(_HTML_ENV.globals)


# ---------------------------------------------------------------- static checks


def _private(value: object) -> bool:
    return isinstance(value, str) and value.startswith("_")


def _check_ast(part: str, ast: nodes.Template) -> frozenset[str]:
    """Raise TemplateProblem for the first (lowest line) problem; return the top-level
    names the template reads."""
    problems: list[tuple[int, str]] = []
    undeclared = find_undeclared_variables(ast)
    # A name the template assigns somewhere (e.g. inside an {% if %}) is the author's own.
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in sorted(undeclared - _ALLOWED_NAMES - assigned):
        line = next(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
            1,
        )
        known = ", ".join(sorted(VARIABLES))
        problems.append((line, f"unknown variable {name!r} (known: {known})"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        key: object = None
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            key = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            key = arg.value if isinstance(arg, nodes.Const) else None
        if _private(key):
            problems.append(
                (node.lineno, f"access to {key!r} is not allowed (names starting with '_' are private)")
            )
            continue
        if (
            isinstance(node, nodes.Getattr | nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and node.node.name in _KNOWN_ATTRS
            and node.node.name in undeclared
            and isinstance(key, str)
            and key not in _KNOWN_ATTRS[node.node.name]
        ):
            name = node.node.name
            known = ", ".join(sorted(_KNOWN_ATTRS[name]))
            problems.append((node.lineno, f"{name} has no attribute {key!r} (known: {known})"))
    if problems:
        line, message = min(problems)
        raise TemplateProblem(part, line, message)
    return frozenset(n.name for n in ast.find_all(nodes.Name) if n.ctx == "load")


def _compile(part: str, source: str, env: _Sandbox, note: str = "") -> tuple[Template, frozenset[str]]:
    try:
        ast = env.parse(source)
        names = _check_ast(part, ast)
        return env.from_string(ast), names
    except TemplateSyntaxError as e:
        raise TemplateProblem(part, e.lineno, note + (e.message or str(e))) from None
    except TemplateProblem as e:
        if note:
            raise TemplateProblem(part, e.line, note + e.message) from None
        raise


# ---------------------------------------------------------------- link scanning (compile time)

_A_START = re.compile(r"<a(?=[\s>/])", re.IGNORECASE)
_JINJA_CLOSE = {"{{": "}}", "{%": "%}", "{#": "#}"}
_UNSUB_ONLY = re.compile(r"\{\{-?\s*unsubscribe_url\s*-?\}\}")
_NOT_TRACKED = ("mailto:", "#", "tel:", "sms:", "javascript:", "data:")
_TRACK_ATTR = "data-lunamail-track"
_TAGS = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Attr:
    name: str
    value: str | None
    start: int  # where the attribute (including leading whitespace) starts
    vstart: int  # value span, quotes excluded
    vend: int
    quoted: bool


def _skip_jinja(src: str, i: int) -> int:
    """If a Jinja tag/expression/comment starts at ``i``, the index after it, else ``i``."""
    opener = src[i : i + 2]
    closer = _JINJA_CLOSE.get(opener)
    if closer is None:
        return i
    j = src.find(closer, i + 2)
    return len(src) if j < 0 else j + 2


def _scan_tag(src: str, i: int) -> tuple[int, list[_Attr]]:
    """Attributes of the tag whose name ends at ``i``; returns (index after '>', attrs).
    Tolerates Jinja inside the tag and inside attribute values."""
    n = len(src)
    attrs: list[_Attr] = []
    while i < n:
        start = i
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            break
        if src[i] == ">":
            return i + 1, attrs
        if src.startswith("/>", i):
            return i + 2, attrs
        j = _skip_jinja(src, i)
        if j != i:
            i = j
            continue
        name_start = i
        while i < n and not src[i].isspace() and src[i] not in "=>" and not src.startswith("/>", i):
            j = _skip_jinja(src, i)
            i = j if j != i else i + 1
        name = src[name_start:i].lower()
        k = i
        while k < n and src[k].isspace():
            k += 1
        if k < n and src[k] == "=":
            k += 1
            while k < n and src[k].isspace():
                k += 1
            quote = src[k] if k < n and src[k] in "\"'" else ""
            vstart = k + 1 if quote else k
            k = vstart
            while k < n:
                j = _skip_jinja(src, k)
                if j != k:
                    k = j
                    continue
                c = src[k]
                if (quote and c == quote) or (not quote and (c.isspace() or c == ">")):
                    break
                k += 1
            attrs.append(_Attr(name, src[vstart:k], start, vstart, k, bool(quote)))
            i = k + 1 if quote else k
        elif name:
            attrs.append(_Attr(name, None, start, i, i, False))
        else:
            i += 1
    return n, attrs


@dataclass(frozen=True, slots=True)
class _ScannedLink:
    index: int | None  # None: never tracked
    href: _Attr | None
    track_attr: _Attr | None
    tag_end: int


def _scan_links(src: str) -> list[_ScannedLink]:
    found: list[_ScannedLink] = []
    index = 0
    pos = 0
    while True:
        m = _A_START.search(src, pos)
        if m is None:
            return found
        end, attrs = _scan_tag(src, m.end())
        pos = end
        by_name = {a.name: a for a in attrs}
        href = by_name.get("href")
        track = by_name.get(_TRACK_ATTR)
        trackable = False
        if href is not None and href.value is not None:
            value = href.value.strip()
            low = value.lower()
            templated = "{{" in value or "{%" in value
            trackable = not (
                not value
                or low.startswith(_NOT_TRACKED)
                or _UNSUB_ONLY.fullmatch(value)
                or (not templated and not low.startswith(("http://", "https://")))
                or (track is not None and (track.value or "").strip().lower() == "off")
            )
        found.append(_ScannedLink(index if trackable else None, href, track, end))
        if trackable:
            index += 1


def extract_links(html: str) -> list[Link]:
    """The trackable links of an HTML template in order, with the indexes that
    :meth:`CompiledCampaign.render` passes to a link rewriter (reports map link id -> URL)."""
    out: list[Link] = []
    for link in _scan_links(html):
        if link.index is None or link.href is None or link.href.value is None:
            continue
        close = html.lower().find("</a", link.tag_end)
        inner = html[link.tag_end : close] if close >= 0 else ""
        text = _WS.sub(" ", unescape(_TAGS.sub(" ", inner))).strip()
        out.append(Link(link.index, unescape(link.href.value.strip()), text))
    return out


_MARK_OPEN, _MARK_MID, _MARK_CLOSE = "\x01", "\x02", "\x03"


def _prepare_html(src: str) -> tuple[str, str]:
    """(plain, marked) variants of the HTML source: both without the internal
    ``data-lunamail-track`` attribute; the marked one with each trackable href wrapped
    in markers carrying its index."""
    plain: list[str] = []
    marked: list[str] = []
    pos_p = pos_m = 0
    for link in _scan_links(src):
        if link.track_attr is not None:
            a = link.track_attr
            stop = a.vend + (1 if a.quoted else 0)
            plain.append(src[pos_p : a.start])
            pos_p = stop
            marked.append(src[pos_m : a.start])
            pos_m = stop
        if link.index is not None and link.href is not None:
            h = link.href
            q = "" if h.quoted else '"'
            marked.append(src[pos_m : h.vstart])
            marked.append(f"{q}{_MARK_OPEN}{link.index}{_MARK_MID}{src[h.vstart : h.vend]}{_MARK_CLOSE}{q}")
            pos_m = h.vend
    plain.append(src[pos_p:])
    marked.append(src[pos_m:])
    return "".join(plain), "".join(marked)


# ---------------------------------------------------------------- compiled campaign


class CompiledCampaign:
    """Subject, HTML and text compiled once; :meth:`render` per recipient."""

    __slots__ = (
        "_html",
        "_marked",
        "_marked_source",
        "_static_urls",
        "_subject",
        "_text",
        "html_source",
        "links",
        "names",
        "subject_source",
        "text_generated",
        "text_source",
        "unsubscribe_link",
    )

    def __init__(self, subject: str, html: str, text: str | None) -> None:
        self.subject_source = subject
        self.html_source = html
        self.text_generated = text is None
        self.text_source = html_to_text(html) if text is None else text
        note = "(in the text generated from the HTML) " if text is None else ""
        self._subject, subject_names = _compile("subject", subject, _TEXT_ENV)
        self._html, html_names = _compile("html", html, _HTML_ENV)
        self._text, text_names = _compile("text", self.text_source, _TEXT_ENV, note)
        plain, self._marked_source = _prepare_html(html)
        if plain != html:
            self._html = _HTML_ENV.from_string(plain)
        self._marked: Template | None = None
        self.links: tuple[Link, ...] = tuple(extract_links(html))
        #: Whether some ``<a href>`` of the HTML uses ``unsubscribe_url`` (the visible link
        #: that every campaign must carry).
        self.unsubscribe_link = any(
            link.href is not None and "unsubscribe_url" in (link.href.value or "")
            for link in _scan_links(html)
        )
        self._static_urls: Mapping[int, str] = {
            link.index: link.url.strip()
            for link in self.links
            if "{{" not in link.url and "{%" not in link.url
        }
        #: Top-level names each part reads, e.g. to check that "unsubscribe_url" is used.
        self.names: Mapping[str, frozenset[str]] = {
            "subject": subject_names,
            "html": html_names,
            "text": text_names,
        }

    def uses(self, part: str, name: str) -> bool:
        """Whether ``part`` reads the top-level variable ``name``."""
        return name in self.names[part]

    def render(
        self,
        subscriber: Mapping[str, Any],
        *,
        unsubscribe_url: str,
        view_in_browser_url: str,
        campaign: Mapping[str, Any],
        link_rewriter: LinkRewriter | None = None,
    ) -> Rendered:
        """Render one recipient.  With ``link_rewriter``, each trackable ``href`` (absolute
        http(s), not the unsubscribe URL, not ``mailto:``/``#``, not marked
        ``data-lunamail-track="off"``) is replaced by ``link_rewriter(url, index)``.
        Raises RenderProblem when the sandbox refuses something."""
        # One plain dict for all three parts; a fresh Context per part, because a template's
        # top-level {% set %} writes into its Context and must not leak to the next recipient.
        parent = {
            **_GLOBALS,
            "subscriber": subscriber,
            "unsubscribe_url": unsubscribe_url,
            "view_in_browser_url": view_in_browser_url,
            "campaign": campaign,
        }
        part = "subject"
        try:
            subject = _run(self._subject, _TEXT_ENV, parent)
            if "\n" in subject or "\r" in subject:  # a header must stay one line
                subject = " ".join(subject.split())
            part = "html"
            if link_rewriter is None:
                html = _run(self._html, _HTML_ENV, parent)
            else:
                marked = _run(self._marked_template(), _HTML_ENV, parent)
                html = _rewrite(marked, unsubscribe_url, link_rewriter, self._static_urls)
            part = "text"
            text = _run(self._text, _TEXT_ENV, parent)
        except Exception as e:
            raise RenderProblem(part, str(e) or type(e).__name__) from e
        return Rendered(subject.strip(), html, text)

    def _marked_template(self) -> Template:
        # Built on first use: campaigns without tracking never pay for it.
        if self._marked is None:
            self._marked = _HTML_ENV.from_string(self._marked_source)
        return self._marked


def _run(template: Template, env: _Sandbox, parent: dict[str, Any]) -> str:
    """``Template.render`` without its per-call costs: no copy of the globals ChainMap into
    every context (a third of the render time for a typical email)."""
    ctx = Context(env, parent, None, template.blocks)
    return "".join(template.root_render_func(ctx))


def _href_url(raw: str) -> str:
    """The URL an href value stands for (the rendered value is HTML-escaped)."""
    url = raw
    if "&" in url:
        url = url.replace("&amp;", "&")
        if "&" in url and ";" in url:
            url = unescape(raw)
    return url.strip()


def _rewrite(
    html: str, unsubscribe_url: str, rewriter: LinkRewriter, static: Mapping[int, str]
) -> str:
    """Replace each marked href by the rewriter's URL.  A split on the marker characters, not
    an HTML parse; for links whose href has no template code, ``static`` holds the URL
    decoded at compile time."""
    chunks = html.split(_MARK_OPEN)
    out = [chunks[0]]
    for chunk in chunks[1:]:
        head, found, tail = chunk.partition(_MARK_CLOSE)
        number, mid, raw = head.partition(_MARK_MID)
        if not (found and mid and number.isdigit()):
            out.append(chunk)  # a stray marker character (from data): drop it
            continue
        index = int(number)
        url = static.get(index)
        if url is None:
            url = _href_url(raw)
            if not url[:8].lower().startswith(("http://", "https://")):
                url = unsubscribe_url  # rendered to mailto:, #, a relative link...: keep
        if url == unsubscribe_url:
            out.append(raw)
        else:
            new = rewriter(url, index)
            if "&" in new or '"' in new or "<" in new or ">" in new or "'" in new:
                new = _escape_attr(new)
            out.append(new)
        out.append(tail)
    return "".join(out)


def compile_campaign(subject: str, html: str, text: str | None) -> CompiledCampaign:
    """Validate and compile a campaign's three parts (``text=None``: derive it from the
    HTML).  Raises TemplateProblem(part, line, message) for the first problem found."""
    return CompiledCampaign(subject, html, text)
