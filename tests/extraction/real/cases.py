"""The scenarios behind the captured traces, and what a person reading each trace would say.

Each case is one question put to one instrumented app: the documents its retriever or search tool
returns (in the order the model sees them, so `[n]` names the n-th), and the answer the model gives
(the fake OpenAI server replies with it). The verdicts are written by hand, from reading the answer
against the documents, not computed by any metric:

- citation_validity (default params, `when_no_citations: pass`): fail when any `[n]` names no
  retrieved document; an answer citing nothing (an empty one included) passes vacuously.
- citations_required (citation_validity with `when_no_citations: fail`): also fails an answer that
  cites nothing, an empty one included.
- pii_leakage: fail when the answer shows an e-mail address or a phone number (in any written form).
- non_empty: fail when the answer is empty or blank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PASS, FAIL = "pass", "fail"


@dataclass(frozen=True)
class Doc:
    title: str
    text: str
    url: str


@dataclass(frozen=True)
class Case:
    id: str
    framework: str  # langchain | langgraph | observe | openai
    variant: str  # the app's shape within the framework (see capture.py)
    question: str
    docs: tuple[Doc, ...]
    answer: str
    citation_validity: str
    citations_required: str
    pii_leakage: str
    non_empty: str
    plan: dict[str, str] = field(default_factory=dict)  # the agent's tool call, for agents that plan

    @property
    def verdicts(self) -> dict[str, str]:
        return {
            "citation_validity": self.citation_validity,
            "citations_required": self.citations_required,
            "pii_leakage": self.pii_leakage,
            "non_empty": self.non_empty,
        }


ROUTER_DOCS = (
    Doc(
        "Factory reset",
        "Hold the reset button on the back of the X200 router for 10 seconds until the light blinks amber.",
        "https://docs.example.com/x200/reset",
    ),
    Doc(
        "Admin password",
        "After a reset the admin password is the one printed on the label under the router.",
        "https://docs.example.com/x200/password",
    ),
    Doc(
        "Firmware",
        "Firmware updates install automatically at 03:00 local time when the router is idle.",
        "https://docs.example.com/x200/firmware",
    ),
)
BILLING_DOCS = (
    Doc(
        "Refund window",
        "Annual plans can be refunded in full within 30 days of purchase.",
        "https://help.example.com/billing/refunds",
    ),
    Doc(
        "Prorated refunds",
        "After 30 days, annual plans are refunded pro rata for the unused full months.",
        "https://help.example.com/billing/prorated",
    ),
)
TRAVEL_DOCS = (
    Doc(
        "Lisbon transport",
        "Tram 28 runs from Martim Moniz through Alfama to Campo de Ourique every 10 minutes.",
        "https://travel.example.com/lisbon/tram-28",
    ),
    Doc(
        "Lisbon passes",
        "The Viva Viagem card costs 0.50 EUR and can be loaded with single fares or a 24-hour pass.",
        "https://travel.example.com/lisbon/passes",
    ),
    Doc(
        "Lisbon museums",
        "The Gulbenkian Museum is closed on Tuesdays and free on Sunday afternoons.",
        "https://travel.example.com/lisbon/museums",
    ),
)
SHIPPING_DOCS = (
    Doc(
        "Delivery times",
        "Standard delivery inside the EU takes 3 to 5 working days after dispatch.",
        "https://help.example.com/shipping/times",
    ),
    Doc(
        "Lost parcels",
        "A parcel not delivered 10 working days after dispatch can be reported as lost for a free replacement.",
        "https://help.example.com/shipping/lost",
    ),
    Doc(
        "Returns",
        "Items can be returned within 14 days; the return label is free for defective items.",
        "https://help.example.com/shipping/returns",
    ),
)

CASES: tuple[Case, ...] = (
    # -- LangChain LCEL RAG: "chain" returns the answer string, "with_sources" a dict with context ----
    Case(
        "lc-01", "langchain", "chain",
        "How do I factory reset my X200 router?",
        ROUTER_DOCS,
        "Hold the reset button on the back for 10 seconds until the light blinks amber [1]. "
        "Then log in with the admin password printed on the label under the router [2].",
        PASS, PASS, PASS, PASS,
    ),
    Case(
        "lc-02", "langchain", "chain",
        "Can I get a refund on my annual plan after six weeks?",
        BILLING_DOCS,
        "Yes. After 30 days you get a pro rata refund for the unused full months [2], "
        "processed within 5 business days [3].",
        FAIL, FAIL, PASS, PASS,
    ),
    Case(
        "lc-03", "langchain", "chain",
        "When does the X200 install firmware updates?",
        ROUTER_DOCS,
        "",
        PASS, FAIL, PASS, FAIL,
    ),
    Case(
        "lc-04", "langchain", "with_sources",
        "Who do I call if the X200 reset does not work?",
        ROUTER_DOCS,
        "Try holding the reset button for the full 10 seconds [1]. If it still fails, call our "
        "technician Marta directly on 555-013-2456.",
        PASS, PASS, FAIL, PASS,
    ),
    Case(
        "lc-05", "langchain", "with_sources",
        "How long do I have to ask for a full refund?",
        BILLING_DOCS,
        "You can get a full refund within 30 days of purchase [1]. Write to the account owner at "
        "dana.whitfield@example.org to start it.",
        PASS, PASS, FAIL, PASS,
    ),
    Case(
        "lc-06", "langchain", "with_sources",
        "Is the Gulbenkian open on Tuesdays?",
        TRAVEL_DOCS,
        "No, the Gulbenkian Museum is closed on Tuesdays, but it is free on Sunday afternoons.",
        PASS, FAIL, PASS, PASS,
    ),
    Case(
        "lc-07", "langchain", "chain",
        "How do I get around Lisbon cheaply?",
        TRAVEL_DOCS,
        "Take tram 28, which runs every 10 minutes [1], and load a 24-hour pass on a Viva Viagem card [1, 2].",
        PASS, PASS, PASS, PASS,
    ),
    # -- langfuse.openai drop-in: "bare" is the lone LLM call, "wrapped" an @observe span returning None --
    Case(
        "oa-01", "openai", "bare",
        "What does a Viva Viagem card cost?",
        TRAVEL_DOCS,
        "The card itself costs 0.50 EUR [2]; you can load single fares or a 24-hour pass on it [2].",
        PASS, PASS, PASS, PASS,
    ),
    Case(
        "oa-02", "openai", "bare",
        "How long does standard EU delivery take?",
        SHIPPING_DOCS,
        "Standard delivery inside the EU takes 3 to 5 working days after dispatch [1], or 1 day with express [5].",
        FAIL, FAIL, PASS, PASS,
    ),
    Case(
        "oa-03", "openai", "bare",
        "My parcel has not arrived after two weeks, what now?",
        SHIPPING_DOCS,
        "After 10 working days you can report it as lost and get a free replacement [2]. "
        "Our courier desk answers on 555.019.3302.",
        PASS, PASS, FAIL, PASS,
    ),
    Case(
        "oa-04", "openai", "wrapped",
        "Is the return label free?",
        SHIPPING_DOCS,
        "   ",
        PASS, FAIL, PASS, FAIL,
    ),
    Case(
        "oa-05", "openai", "wrapped",
        "Can I return a defective blender after ten days?",
        SHIPPING_DOCS,
        "Yes, returns are accepted within 14 days and the label is free for defective items [3]. "
        "Send photos to returns.team@example.net first.",
        PASS, PASS, FAIL, PASS,
    ),
    Case(
        "oa-06", "openai", "wrapped",
        "What is the admin password after a reset?",
        ROUTER_DOCS,
        "It is the password printed on the label under the router [2].",
        PASS, PASS, PASS, PASS,
    ),
    # -- @observe agent: "web" searches with a TOOL, "kb" reads a RETRIEVER after an unrelated TOOL ----
    Case(
        "ag-01", "observe", "web",
        "Which Lisbon tram goes through Alfama?",
        TRAVEL_DOCS,
        "Tram 28 goes through Alfama on its way from Martim Moniz to Campo de Ourique [1]. "
        "Check museum days before you go [3].",
        PASS, PASS, PASS, PASS,
        plan={"tool": "web_search", "query": "Lisbon tram Alfama"},
    ),
    Case(
        "ag-02", "observe", "web",
        "Do annual plans get prorated refunds?",
        BILLING_DOCS,
        "Yes, after 30 days annual plans are refunded pro rata [2], as confirmed in the 2024 terms [4].",
        FAIL, FAIL, PASS, PASS,
        plan={"tool": "web_search", "query": "annual plan prorated refund"},
    ),
    Case(
        "ag-03", "observe", "web",
        "How long is the Gulbenkian open on Sundays?",
        TRAVEL_DOCS,
        "",
        PASS, FAIL, PASS, FAIL,
        plan={"tool": "web_search", "query": "Gulbenkian Sunday opening hours"},
    ),
    Case(
        "ag-04", "observe", "kb",
        "My order A-1042 never arrived, what can I do?",
        SHIPPING_DOCS,
        "Your order shipped 12 working days ago, so you can report it as lost for a free replacement [2]. "
        "If you prefer, our London office can help on +44 20 7946 0958.",
        PASS, PASS, FAIL, PASS,
    ),
    Case(
        "ag-05", "observe", "kb",
        "Can I still return order A-1042?",
        SHIPPING_DOCS,
        "Returns are accepted within 14 days of delivery [3], so you still have time.",
        PASS, PASS, PASS, PASS,
    ),
    Case(
        "ag-06", "observe", "kb",
        "Where is order A-1042 right now?",
        SHIPPING_DOCS,
        "It left our warehouse and standard EU delivery takes 3 to 5 working days [0]. "
        "The driver, Tom Reyes, can be reached at tom.reyes@example.com.",
        FAIL, FAIL, FAIL, PASS,
    ),
    # -- LangGraph agent: agent node -> retriever tool (ToolNode) -> agent node ----------------------
    Case(
        "lg-01", "langgraph", "react",
        "How do I reset the X200 and log in again?",
        ROUTER_DOCS,
        "Hold the reset button for 10 seconds [1], then use the admin password from the label [2].",
        PASS, PASS, PASS, PASS,
        plan={"tool": "search_docs", "query": "X200 reset admin password"},
    ),
    Case(
        "lg-02", "langgraph", "react",
        "Is a refund possible after 30 days?",
        BILLING_DOCS,
        "Yes, pro rata for the unused full months [2]; partial months are never refunded [3].",
        FAIL, FAIL, PASS, PASS,
        plan={"tool": "search_docs", "query": "refund after 30 days"},
    ),
    Case(
        "lg-03", "langgraph", "react",
        "Does the X200 update itself?",
        ROUTER_DOCS,
        "",
        PASS, FAIL, PASS, FAIL,
        plan={"tool": "search_docs", "query": "X200 firmware updates"},
    ),
    Case(
        "lg-04", "langgraph", "react",
        "Who can help me with a lost parcel?",
        SHIPPING_DOCS,
        "You can report the parcel as lost after 10 working days [2]. Our shipping lead answers on 555 013 2456.",
        PASS, PASS, FAIL, PASS,
        plan={"tool": "search_docs", "query": "lost parcel help"},
    ),
    Case(
        "lg-05", "langgraph", "react",
        "How much is a 24-hour pass in Lisbon?",
        TRAVEL_DOCS,
        "A 24-hour pass is loaded on a Viva Viagem card, which costs 0.50 EUR.",
        PASS, FAIL, PASS, PASS,
        plan={"tool": "search_docs", "query": "Lisbon 24-hour pass price"},
    ),
    Case(
        "lg-06", "langgraph", "react",
        "Can I return a broken item for free?",
        SHIPPING_DOCS,
        "Yes, the return label is free for defective items [3]. Email the warehouse at "
        "ops-desk@example.com with your order number.",
        PASS, PASS, FAIL, PASS,
        plan={"tool": "search_docs", "query": "free return defective item"},
    ),
)  # fmt: skip

CASES_BY_ID = {case.id: case for case in CASES}


def case_for_text(text: str) -> Case | None:
    """The case whose question appears in `text` (every question is unique)."""
    return next((case for case in CASES if case.question in text), None)
