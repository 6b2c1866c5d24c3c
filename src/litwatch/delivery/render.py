"""Rendering a digest: the Jinja2 templates (text and HTML) and the message that is sent.

The only module that imports Jinja2; the HTML template escapes every value.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
from email.message import EmailMessage
from pathlib import Path

import jinja2
from sqlalchemy.engine import Connection

from litwatch.config import Settings
from litwatch.delivery.contents import DigestContents
from litwatch.delivery.mail import build_message
from litwatch.delivery.view import DigestView, Window, build_view
from litwatch.files.groups import Group


def wrap(text: str, width: int = 74, joiner: str = "\n  ") -> str:
    """Greedy word wrap of one cleaned line for the plain-text part; long words (URLs) stay whole."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return joiner.join(lines)


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["wrap"] = wrap
    env.filters["nobreak"] = lambda text: str(text).replace(" ", "\u00a0")
    return env


def render(view: DigestView) -> tuple[str, str]:
    """The plain-text and the HTML body (every value escaped in the HTML)."""
    env = _templates()
    return env.get_template("digest.txt").render(d=view), env.get_template("digest.html").render(d=view)


def compose(conn: Connection, settings: Settings, group: Group, contents: DigestContents, *, message_id: str,
            created: dt.datetime) -> tuple[DigestView, EmailMessage]:
    """Render chosen contents into the message that is sent (and the view it was rendered from)."""
    window = Window(contents.covers_from, contents.covers_to, contents.carried)
    view = build_view(conn, group, contents.papers, contents.overflow, contents.notices, window, contents.new_by_query,
                      published=contents.published)
    text, html = render(view)
    message = build_message(subject=view.subject, sender=settings.mail_from, recipients=group.recipients,
                            text=text, html=html, message_id=message_id,
                            date=email.utils.format_datetime(created),
                            headers={"X-Litwatch-Group": group.name})
    return view, message

