"""HTML -> readable plain text, for the text part of a campaign.

Every campaign goes out as ``multipart/alternative``; when the author gives
no text part we derive one from the HTML.  The conversion runs once per
campaign on the *template source* (Jinja tags are plain text to an HTML
parser, so they survive and are rendered per recipient afterwards), which is
why it uses the forgiving stdlib parser and never wraps lines: wrapping
could split a ``{{ ... }}`` expression.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Elements whose content never reaches the reader.
_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
# Elements that start and end a paragraph (one blank line around them).
_PARAGRAPH = frozenset(
    {"p", "blockquote", "table", "ul", "ol", "dl", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
)
# Elements that start and end a line.
_LINE = frozenset(
    {
        "div", "section", "article", "header", "footer", "main", "nav", "aside", "address",
        "tr", "li", "dt", "dd", "figure", "figcaption", "center", "form", "fieldset",
    }
)
_HEADING_RULE = {"h1": "=", "h2": "-"}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


class _Converter(HTMLParser):
    """Collects text pieces; block boundaries are requested as pending newlines so that
    consecutive blocks never produce more than one blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._pending = 0  # newlines wanted before the next text
        self._at_line_start = True
        self._drop = 0
        self._pre = 0
        self._lists: list[list[int]] = []  # per open list: [is_ordered, next number]
        self._links: list[tuple[str, int]] = []  # (href, index into pieces where the text starts)
        self._heading: tuple[str, int] | None = None

    # ------------------------------------------------------------ output helpers

    def _newlines(self, n: int) -> None:
        if self.pieces:
            self._pending = max(self._pending, n)

    def _flush(self) -> None:
        if self._pending:
            self.pieces.append("\n" * self._pending)
            self._pending = 0
            self._at_line_start = True

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._flush()
        if self._at_line_start:
            indent = "  " * max(0, len(self._lists) - 1) if self._lists else ""
            if indent:
                self.pieces.append(indent)
        self.pieces.append(text)
        self._at_line_start = text.endswith("\n")

    def _text_since(self, start: int) -> str:
        return "".join(self.pieces[start:]).strip()

    # ------------------------------------------------------------ parser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            self._drop += 1
            return
        if self._drop:
            return
        if tag == "br":
            self.pieces.append("\n")
            self._at_line_start = True
        elif tag == "hr":
            self._newlines(2)
            self._emit("---")
            self._newlines(2)
        elif tag in ("ul", "ol"):
            self._newlines(1 if self._lists else 2)
            self._lists.append([tag == "ol", 1])
        elif tag == "li":
            self._newlines(1)
            if self._lists:
                ordered, number = self._lists[-1]
                self._emit(f"{number}. " if ordered else "- ")
                self._lists[-1][1] = number + 1
            else:
                self._emit("- ")
        elif tag in _PARAGRAPH:
            self._newlines(2)
            if tag == "pre":
                self._pre += 1
            if tag in _HEADING_RULE:
                self._flush()
                self._heading = (tag, len(self.pieces))
        elif tag in _LINE:
            self._newlines(1)
        elif tag in ("td", "th"):
            if not self._at_line_start and self.pieces and not self._pending:
                self._emit(" ")
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            start = len(self.pieces)
            self._links.append((href, start))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._emit(_SPACES.sub(" ", alt))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <img/>, <hr/>: same as the start tag, with nothing to close.
        if tag in _DROP:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self._drop = max(0, self._drop - 1)
            return
        if self._drop:
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            self._close_link(href, start)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._newlines(1 if self._lists else 2)
        elif tag in _PARAGRAPH:
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            if tag in _HEADING_RULE and self._heading and self._heading[0] == tag:
                title = self._text_since(self._heading[1])
                self._heading = None
                # The rule matches the title's length, which template code would change.
                if title and "{{" not in title and "{%" not in title:
                    self._emit("\n" + _HEADING_RULE[tag] * min(len(title), 72))
            self._newlines(2)
        elif tag in _LINE:
            self._newlines(1)

    def handle_data(self, data: str) -> None:
        if self._drop:
            return
        if self._pre:
            self._emit(data)
            return
        text = _SPACES.sub(" ", data)
        if self._at_line_start or self._pending or (self.pieces and self.pieces[-1].endswith(" ")):
            text = text.lstrip(" ")
        self._emit(text)

    def _close_link(self, href: str, start: int) -> None:
        label = self._text_since(start)
        if not href or href.startswith("#"):
            return
        shown = href[7:] if href.lower().startswith("mailto:") else href
        if not label:
            self._emit(shown)
        elif label not in (href, shown):
            self._emit(f" ({shown})" if not self.pieces[-1].endswith(" ") else f"({shown})")


def html_to_text(html: str) -> str:
    """Readable text for ``html``: paragraphs, line breaks, ``- `` list items (``1. `` when
    ordered), underlined h1/h2 (when free of template code), links as ``text (url)``, images as their alt text; scripts
    and styles dropped, whitespace collapsed, entities decoded."""
    conv = _Converter()
    conv.feed(html)
    conv.close()
    lines = [line.rstrip() for line in "".join(conv.pieces).split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n" if out else ""
