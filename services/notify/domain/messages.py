"""A message's wording, once, and its renderings: the e-mail's text and HTML parts, the
webhook's text and docs/messages.md all come from one `Message`, so they cannot drift apart.

Written for someone woken at night on a phone: what it is and their part first, then the few
facts (category, unit, place, time), then what to do, as links. Nothing a reporter typed and no
facts of the incident are ever in a message (they can hold health details); the reader opens
kriselogg for those, after logging in.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Link:
    """Something to do, as a link; the first of a message is its main action (the button)."""

    label: str
    url: str


@dataclass(frozen=True)
class Message:
    subject: str
    greeting: str
    lead: str
    facts: tuple[tuple[str, str], ...] = ()
    links: tuple[Link, ...] = ()
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        """The plain text part. Each link stands alone on its line, so that a phone's mail app
        makes it tappable whole and nothing after it is read as part of the address."""
        lines = [self.greeting, "", self.lead, ""]
        if self.facts:
            lines += [*(f"{name}: {value}" for name, value in self.facts), ""]
        for link in self.links:
            lines += [f"{link.label}:", link.url, ""]
        lines += self.notes
        return "\n".join(lines).rstrip("\n") + "\n"

    def html(self) -> str:
        """The HTML part: the same words, every value escaped, the main action a big button.

        Styles are inline and there are no images or remote resources: mail apps drop <style>
        blocks and block remote content, and a message must read the same offline.
        """
        e = _escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="nb">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(self.subject)}</title>",
            "</head>",
            f'<body style="{BODY}">',
            f'<div style="{COLUMN}">',
            f"<p>{e(self.greeting)}</p>",
            f'<p style="{LEAD}">{e(self.lead)}</p>',
        ]
        if self.facts:
            parts.append(f'<table role="presentation" style="{TABLE}">')
            parts += [
                f'<tr><th scope="row" style="{NAME}">{e(name)}</th>'
                f'<td style="{VALUE}">{e(value)}</td></tr>'
                for name, value in self.facts
            ]
            parts.append("</table>")
        for i, link in enumerate(self.links):
            style = BUTTON if i == 0 else LINK
            parts.append(
                f'<p style="margin:20px 0"><a href="{e(link.url)}" style="{style}">'
                f"{e(link.label)}</a></p>"
            )
        parts += [f"<p>{e(note)}</p>" for note in self.notes]
        parts += ["</div>", "</body>", "</html>"]
        return "\n".join(parts) + "\n"


def _escape(value: str) -> str:
    return escape(value, quote=True)


# Large type and a full-width button with a big tap target (at least 48 px high), dark on
# light with high contrast: readable half awake on a small screen.
BODY = "margin:0;padding:0;background:#ffffff;color:#111111"
COLUMN = (
    "max-width:36em;margin:0 auto;padding:16px;"
    "font-family:Arial,Helvetica,sans-serif;font-size:18px;line-height:1.5"
)
LEAD = "font-weight:bold"
TABLE = "border-collapse:collapse;margin:0 0 8px"
NAME = "text-align:left;vertical-align:top;padding:2px 12px 2px 0"
VALUE = "vertical-align:top;padding:2px 0"
BUTTON = (
    "display:block;padding:16px;background:#0b4f9c;color:#ffffff;text-align:center;"
    "font-size:20px;font-weight:bold;text-decoration:none;border-radius:6px"
)
LINK = "color:#0b4f9c;font-size:18px;text-decoration:underline"
