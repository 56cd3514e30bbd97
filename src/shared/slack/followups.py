"""How a person reads a user's follow-up in a support thread: closing it, or keeping it open.

"thanks!", ":+1:", "merci, ça marche", "danke, hat geklappt", "all good now, thanks" and "that
did it" close a thread; "thanks, but it still fails", ":-1:", "one more question: ..." and
anything asked with "?" keep it open. A follow-up that is neither (an unrelated remark, "I'll try
tomorrow") keeps it open too: nothing says the problem went away.

The reading is phrase-based and multilingual (English, French, German, Spanish, Portuguese,
Italian, Dutch), on text with Slack markup removed (mentions, links), case and curly quotes
folded. Problem phrases only ever veto an acknowledgement ("thanks, but..."): a follow-up without
one keeps the thread open anyway, so they can stay broad.
"""

from __future__ import annotations

import re
from typing import Literal

FollowUp = Literal["acknowledgement", "problem", "other"]

# Slack emoji codes (`:+1:`, `:white_check_mark::skin-tone-2:`) as people type them in messages.
POSITIVE_EMOJI_CODES = frozenset(
    {
        "+1",
        "thumbsup",
        "white_check_mark",
        "heavy_check_mark",
        "ballot_box_with_check",
        "pray",
        "tada",
        "raised_hands",
        "ok_hand",
        "100",
        "heart",
        "hearts",
        "clap",
        "star",
        "star-struck",
        "muscle",
        "rocket",
        "sparkles",
        "bow",
        "smile",
        "smiley",
        "grinning",
        "blush",
        "relieved",
        "slightly_smiling_face",
        "simple_smile",
        "partying_face",
        "thankyou",
        "thank_you",
        "thanks",
        "ok",
        "done",
        "check",
        "green_heart",
        "heart_eyes",
        "hugging_face",
    }
)
NEGATIVE_EMOJI_CODES = frozenset(
    {
        "-1",
        "thumbsdown",
        "x",
        "no_entry",
        "no_entry_sign",
        "disappointed",
        "confused",
        "angry",
        "rage",
        "cry",
        "sob",
        "slightly_frowning_face",
        "white_frowning_face",
        "frowning",
        "face_with_raised_eyebrow",
        "thinking_face",
        "warning",
        "red_circle",
        "question",
        "grey_question",
        "interrobang",
        "weary",
        "tired_face",
        "face_palm",
        "facepalm",
    }
)
_POSITIVE_EMOJI = (
    "\U0001f44d\u2705\u2714\u2611\U0001f64f\U0001f389"  # thumbs up, check marks, folded hands, party
    "\U0001f64c\U0001f44c\U0001f4af\u2764\U0001f44f\U0001f60a"  # raised hands, ok hand, 100, heart, clap, smile
    "\U0001f642\U0001f600\U0001f680\U0001f4aa\U0001f973\u2b50"  # smiles, rocket, muscle, partying face, star
)
_NEGATIVE_EMOJI = (
    "\U0001f44e\u274c\U0001f615\U0001f61e\U0001f620\U0001f621"  # thumbs down, cross, confused, sad, angry
    "\U0001f622\U0001f62d\U0001f914\u26a0\U0001f641\u2639"  # crying, thinking, warning, frowning
)

_EMOJI_CODE_RE = re.compile(r":([a-z0-9_+\-']+)(?:::skin-tone-\d)?:")
# <@U123>, <#C123|general>, <https://x|label>, <!here>: markup, not words.
_SLACK_MARKUP_RE = re.compile(r"<[@#!][^>]*>|<https?://[^>|]*(?:\|([^>]*))?>")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})

# A problem that went away is good news ("no more errors", "doesn't crash anymore", "the error is
# gone"), and some negations are only politeness ("no worries", "pas de souci", "not sure why").
_SOLVED_PROBLEM = "|".join(
    [
        r"\b(?:no|no more|no longer any|without(?: any)?|zero)\s+(?:errors?|issues?|problems?|crash(?:es)?|failures?)\b",
        r"\b(?:doesn't|does not|don't|do not|isn't|is not|won't|not)\s+(?:\w+\s+){0,2}?(?:anymore|any more)\b",
        r"\bno longer\s+(?:\w+\s+)?(?:fails?|failing|crash(?:es|ing)?|errors?|breaks?|broken|happens|an issue)\b",
        r"\b(?:the |that )?(?:errors?|issues?|problems?|bugs?|crash(?:es)?|failures?)\s+(?:is |are |has |have )?"
        r"(?:gone|fixed|resolved|solved|went away|disappeared)\b",
        r"\b(?:no (?:problem|worries)|not an issue|not sure why|no idea why)\b",
        r"\bpas de (?:souci|probl[eè]me)s?\b|\bkein(?:e|en)? (?:problem|fehler|sorge)\w* ?(?:mehr)?\b",
        r"\b(?:sin|ning[uú]n|sem|nessun) problema\b",
    ]
)
_SOLVED_PROBLEM_RE = re.compile(_SOLVED_PROBLEM)

_PROBLEM = "|".join(
    [
        # English: the fix did not work, or there is more to do
        r"\b(?:still|but|however|although|except|unfortunately)\b",
        r"\b(?:not|doesn't|does not|didn't|did not|isn't|is not|wasn't|won't|can't|cannot|couldn't|nope|no luck)\b",
        r"\b(?:fail(?:s|ed|ing|ure)?|errors?|broken|breaks|crash(?:es|ed|ing)?|stuck|same (?:issue|problem))\b",
        r"\b(?:can you|could you|would you|how do|how can|how about|what about|what if|one more|another question|"
        r"i (?:also )?need|also need|help me|follow[- ]up|any idea)\b",
        # French
        r"\b(?:mais|toujours|encore|pas|erreur|[ée]chec|marche plus|bloqu[ée])\b",
        # German
        r"\b(?:aber|immer noch|noch immer|nicht|kein(?:e|en)?|fehler|leider|doch nicht|geht nicht)\b",
        # Spanish and Portuguese (`más` is "more", `mas` is "but")
        r"\b(?:pero|todav[ií]a|a[uú]n|sigue|no funciona|no sirve|falla|fallando|mas|ainda|n[ãa]o|continua|erro|"
        r"problema)\b",
        # Italian, Dutch
        r"\b(?:per[oò]|ancora|non funziona|errore|maar|nog steeds|werkt niet|fout)\b",
    ]
)
_PROBLEM_RE = re.compile(_PROBLEM)

_ACK = "|".join(
    [
        # English thanks and closings
        r"\b(?:thanks?|thank (?:you|u)|thx|tx|ty|tysm|cheers|ta|appreciated?|much appreciated|kudos)\b",
        r"\b(?:great|perfect|awesome|amazing|excellent|brilliant|fantastic|wonderful|lovely|sweet|nice|cool|neat|"
        r"legend|superb|ok(?:ay)?|yay|woo+)\b",
        r"\b(?:got it|gotcha|understood|noted|roger(?: that)?|makes sense|sounds good|will do|good to know|"
        r"fair enough|that helps|very helpful|super helpful|helpful)\b",
        r"\b(?:(?:that|it|this)(?:'s| is)? (?:works?|worked|working|did it|did the trick|fixed it|solved it|sorted it)|"
        r"works now|working now|works fine|works perfectly|works great|did the trick|that did it|that's it|"
        r"that was it|problem solved|issue solved|(?:all )?(?:sorted|solved|resolved|fixed|done)|all (?:good|set)|"
        r"good now|fine now|we're good|i'm good|you rock|lifesaver|life saver)\b",
        # French
        r"\b(?:merci(?: beaucoup)?|[çc]a marche|[çc]a fonctionne|c'est bon|c'est r[ée]gl[ée]|r[ée]solu|parfait|"
        r"super|g[ée]nial|nickel|impeccable|top|d'accord|au top)\b",
        # German
        r"\b(?:danke(?: sch[öo]n)?|vielen dank|hat geklappt|klappt|funktioniert|passt|perfekt|alles klar|"
        r"gel[öo]st|erledigt|prima|toll|super)\b",
        # Spanish, Portuguese
        r"\b(?:gracias|muchas gracias|funcion[óo]|ya funciona|funciona|perfecto|genial|listo|resuelto|"
        r"solucionado|vale|de acuerdo|excelente|obrigad[oa]|valeu|funcionou|perfeito|resolvido|beleza|"
        r"[óo]timo|tudo certo|show)\b",
        # Italian, Dutch
        r"\b(?:grazie(?: mille)?|perfetto|funziona|ha funzionato|risolto|ottimo|bedankt|dank je(?: wel)?|"
        r"dankjewel|werkt|opgelost|top)\b",
    ]
)
_ACK_RE = re.compile(_ACK)


def _normalise(text: str) -> tuple[str, list[str], int, int]:
    """Lower-cased text without Slack markup, plus emoji codes and Unicode emoji counts."""
    text = _SLACK_MARKUP_RE.sub(lambda m: m.group(1) or " ", text.translate(_QUOTES)).casefold()
    codes = [m.group(1) for m in _EMOJI_CODE_RE.finditer(text)]
    words = _EMOJI_CODE_RE.sub(" ", text)
    positive = sum(words.count(ch) for ch in _POSITIVE_EMOJI)
    negative = sum(words.count(ch) for ch in _NEGATIVE_EMOJI)
    return " ".join(words.split()), codes, positive, negative


def read_follow_up(text: str, *, extra_acknowledgement: re.Pattern[str] | None = None) -> FollowUp:
    """What a user's follow-up says: `acknowledgement` (closes), `problem` (reopens) or `other`.

    `extra_acknowledgement`, a team's own phrases, reads a matching follow-up as an
    acknowledgement whatever else it says.
    """
    if extra_acknowledgement is not None and extra_acknowledgement.search(text.strip()):
        return "acknowledgement"
    words, codes, positive_emoji, negative_emoji = _normalise(text)
    if negative_emoji or any(code in NEGATIVE_EMOJI_CODES for code in codes) or "?" in words:
        return "problem"
    solved = _SOLVED_PROBLEM_RE.search(words) is not None
    rest = _SOLVED_PROBLEM_RE.sub(" ", words) if solved else words
    if _PROBLEM_RE.search(rest):
        return "problem"
    if solved or positive_emoji or any(code in POSITIVE_EMOJI_CODES for code in codes) or _ACK_RE.search(rest):
        return "acknowledgement"
    return "other"
