"""The HTML of the public pages: unsubscribe confirmation, done, and "link not valid".

Plain HTML with inline styles and no external assets (no fonts, scripts or
images), so the pages work in any browser, behind strict proxies, and under a
Content-Security-Policy that allows nothing from elsewhere.  Every value from
a token or the campaign is escaped.
"""

from __future__ import annotations

from html import escape

__all__ = ["confirm_page", "done_page", "not_found_page", "unavailable_page"]

_STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d2330;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border:1px solid #d9dce3;border-radius:12px}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
p{margin:0 0 1rem}
.who{font-weight:600;word-break:break-all}
fieldset{border:1px solid #d9dce3;border-radius:8px;margin:0 0 1.5rem;padding:.75rem 1rem}
legend{font-weight:600;padding:0 .25rem}
label{display:flex;gap:.6rem;align-items:flex-start;padding:.4rem 0;cursor:pointer}
input[type=radio]{margin-top:.3rem;width:1.1rem;height:1.1rem;accent-color:#1f4fd1}
button{font:inherit;font-weight:600;color:#fff;background:#1f4fd1;border:0;border-radius:8px;padding:.75rem 1.5rem;cursor:pointer}
button:hover{background:#173ea6}
button:focus-visible,input:focus-visible{outline:3px solid #f0a500;outline-offset:2px}
.note{color:#4a5366;font-size:.9rem;margin:1.25rem 0 0}
@media (max-width:36rem){main{margin:0;border:0;border-radius:0;min-height:100vh}}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex, nofollow">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _sender(sender: str) -> str:
    return escape(sender) if sender else "this sender"


def confirm_page(*, email: str, sender: str, has_list: bool) -> str:
    """Asks before changing anything: mail scanners follow every GET, people press the button.

    The form posts back to the page's own URL (no ``action``), so the token never has to be
    repeated in the HTML."""
    who = _sender(sender)
    if has_list:
        choice = (
            '<fieldset>\n<legend>Unsubscribe from</legend>\n'
            '<label><input type="radio" name="scope" value="list" checked> '
            "<span>This list only</span></label>\n"
            '<label><input type="radio" name="scope" value="all"> '
            f"<span>All lists of {who}</span></label>\n</fieldset>\n"
        )
    else:
        choice = (
            '<input type="hidden" name="scope" value="all">\n'
            f"<p>You will be unsubscribed from all lists of {who}.</p>\n"
        )
    body = (
        "<h1>Unsubscribe?</h1>\n"
        f'<p>Stop emails from {who} to <span class="who">{escape(email)}</span>.</p>\n'
        '<form method="post">\n<input type="hidden" name="action" value="confirm">\n'
        f"{choice}"
        '<button type="submit">Unsubscribe</button>\n</form>\n'
        '<p class="note">Nothing changes until you press the button.</p>'
    )
    return _page("Unsubscribe", body)


def done_page(*, email: str, sender: str, scope: str) -> str:
    """Confirms what happened, in words that name the scope."""
    who = _sender(sender)
    what = f"any list of {who}" if scope == "all" else f"this list of {who}"
    body = (
        "<h1>You are unsubscribed</h1>\n"
        f'<p><span class="who">{escape(email)}</span> will no longer get emails from {what}.</p>\n'
        '<p class="note">Unsubscribed by mistake? Reply to one of the sender\'s emails '
        "to ask to be added again.</p>"
    )
    return _page("Unsubscribed", body)


def not_found_page() -> str:
    """For a forged, damaged or expired link: says so without saying which."""
    body = (
        "<h1>This link is not valid</h1>\n"
        "<p>It may have been copied incompletely, or it has expired.</p>\n"
        '<p class="note">If you copied it from an email, try opening it from the email directly.</p>'
    )
    return _page("Link not valid", body)


def unavailable_page() -> str:
    """For a web view that cannot be shown: a bad link, or content no longer kept."""
    body = (
        "<h1>This email is not available</h1>\n"
        "<p>The online version of this email cannot be shown. The link may be incomplete "
        "or expired, or the email is no longer kept online.</p>"
    )
    return _page("Email not available", body)
