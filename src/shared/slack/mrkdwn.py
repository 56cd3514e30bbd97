"""Slack mrkdwn for text we do not control (prompt names, commit messages, error texts).

Slack reads `&`, `<` and `>` as control characters in message text: `<!channel>` pings a whole
channel and `<https://x|label>` is a link. Escaping those three as HTML entities is what Slack
documents ("Escaping text"); everything else is shown as typed.
"""

from __future__ import annotations

# A backtick would end a code span early; U+02CB looks the same and cannot.
_CODE_SAFE = str.maketrans({"`": "\u02cb", "\n": " ", "\r": " "})


def escape(text: str) -> str:
    """Text shown as typed: no mentions, no links, no entities of its own."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Text shown as inline code, escaped, on one line and never breaking out of its backticks."""
    return f"`{escape(text.translate(_CODE_SAFE))}`"
