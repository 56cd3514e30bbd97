"""Synthetic traces of athena, an insurance-underwriting recommendation assistant.

Why: the demo monitor, the tests and the benchmarks need traces that look like production without
any production data. Each trace is written the way Langfuse v4 returns it from
`GET /api/public/v2/observations`: one JSON row per observation (every field of `ObservationV2`,
camelCase, `input`/`output` as raw strings), the rows of one trace kept together.

One trace is one underwriting question:

    underwriting-recommendation   SPAN (root)  input: the case   output: the final recommendation
    ├─ location-extraction        GENERATION   where is the risk? -> JSON location
    ├─ rule-lookup                SPAN         retrieved guideline / hazard / loss items, with ids
    └─ recommendation             GENERATION   prompt: CASE ASSESSMENT / CONTEXT DATA [1]..[k] /
                                               UNDERWRITING FLAGS -> JSON {decision, rationale
                                               citing [n], refer_reason}

About a quarter of the traces carry one defect each (see `DEFECT_WEIGHTS`): wrong or dangling
citations, missing decision, PII in the output, empty or malformed output, unicode, very long text,
missing fields. About 1% (at least 2) have an empty or missing trace id, which the pipeline must
count as invalid. Everything is deterministic given the seed and base time.

    python -m implementations.athena.generate_traces --n 300 --seed 7 --out data/samples/athena_traces.jsonl

From code (benchmarks): `write_traces(path, n=100_000, seed=1)`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

DEFAULT_BASE_TIME = datetime(2026, 11, 20, tzinfo=UTC)
PROJECT_ID = "cm3k9athena0prod0000000001"
TRACE_NAME = "underwriting-recommendation"
PROMPT_NAME = "athena-recommendation"
LOCATION_PROMPT_NAME = "athena-location-extraction"

# Share of all traces per defect; the rest (~75%) are clean. Missing ids come on top (MISSING_ID_RATE).
DEFECT_WEIGHTS: dict[str, float] = {
    "dangling_citation": 0.03,  # cites [n] beyond the context items
    "wrong_citation": 0.025,  # cites a rule id that was never retrieved
    "no_citations": 0.02,  # rationale without any citation
    "missing_decision": 0.025,  # decision absent, null or not one of approve/decline/refer
    "refer_without_reason": 0.02,  # decision refer, no refer_reason
    "pii": 0.03,  # email / phone / Luhn-valid card / SSN-like id in the output
    "empty_output": 0.02,  # "" or null output
    "malformed_json": 0.02,  # truncated JSON
    "unicode": 0.03,  # accents, CJK, emoji in the case and output (valid otherwise)
    "very_long": 0.01,  # rationale of tens of kilobytes
    "missing_fields": 0.02,  # no prompt, no rule-lookup, no root output, or no recommendation step
}
MISSING_ID_RATE = 0.01
# What a `missing_fields` trace lacks; a missing recommendation step makes the trace invalid.
MISSING_FIELD_VARIANTS = ("no_prompt", "no_lookup", "no_root_output", "no_recommendation")
DECISIONS = ("approve", "decline", "refer")


@dataclass
class GeneratedTrace:
    """One generated trace: its rows plus the ground truth the tests check against."""

    trace_id: str | None
    defect: str | None
    decision: str | None
    rows: list[dict[str, Any]]


@dataclass
class WriteStats:
    traces: int = 0
    rows: int = 0
    bytes: int = 0
    defects: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)


# -- the domain: places, businesses, guidelines -----------------------------------------------

# city, region, country, lat, lon, flood zone, miles to coast, wildfire score (0-100)
LOCATIONS: tuple[tuple[str, str, str, float, float, str, float, int], ...] = (
    ("Miami", "FL", "US", 25.7617, -80.1918, "AE", 0.6, 4),
    ("Tampa", "FL", "US", 27.9506, -82.4572, "X", 3.5, 6),
    ("Houston", "TX", "US", 29.7604, -95.3698, "AE", 40.0, 9),
    ("Austin", "TX", "US", 30.2672, -97.7431, "X", 160.0, 38),
    ("Phoenix", "AZ", "US", 33.4484, -112.074, "X", 290.0, 55),
    ("Los Angeles", "CA", "US", 34.0522, -118.2437, "X", 12.0, 71),
    ("Paradise", "CA", "US", 39.7596, -121.6219, "X", 140.0, 93),
    ("San Francisco", "CA", "US", 37.7749, -122.4194, "X", 1.8, 22),
    ("Seattle", "WA", "US", 47.6062, -122.3321, "X", 2.0, 18),
    ("Denver", "CO", "US", 39.7392, -104.9903, "X", 900.0, 47),
    ("Chicago", "IL", "US", 41.8781, -87.6298, "X", 700.0, 3),
    ("New Orleans", "LA", "US", 29.9511, -90.0715, "VE", 0.9, 5),
    ("Charleston", "SC", "US", 32.7765, -79.9311, "AE", 0.4, 8),
    ("Boston", "MA", "US", 42.3601, -71.0589, "X", 1.1, 6),
    ("New York", "NY", "US", 40.7128, -74.006, "AE", 0.7, 2),
    ("Atlanta", "GA", "US", 33.749, -84.388, "X", 250.0, 15),
    ("Minneapolis", "MN", "US", 44.9778, -93.265, "X", 1200.0, 9),
    ("Nashville", "TN", "US", 36.1627, -86.7816, "A", 420.0, 14),
    ("Boise", "ID", "US", 43.615, -116.2023, "X", 400.0, 64),
    ("Portland", "ME", "US", 43.6591, -70.2568, "X", 0.8, 7),
)
UNICODE_LOCATIONS: tuple[tuple[str, str, str, float, float, str, float, int], ...] = (
    ("Montréal", "QC", "CA", 45.5017, -73.5673, "X", 500.0, 6),
    ("São Paulo", "SP", "BR", -23.5505, -46.6333, "X", 40.0, 12),
    ("Zürich", "ZH", "CH", 47.3769, 8.5417, "X", 400.0, 4),
    ("東京都 (Tokyo)", "13", "JP", 35.6762, 139.6503, "X", 2.0, 3),
    ("Curaçao", "CW", "CW", 12.1696, -68.99, "AE", 0.3, 10),
)
BUSINESSES: tuple[tuple[str, bool], ...] = (  # business type, cooking exposure
    ("full-service restaurant", True),
    ("dry-goods warehouse", False),
    ("auto repair shop", False),
    ("dental clinic", False),
    ("boutique hotel (24 rooms)", True),
    ("craft brewery with taproom", True),
    ("apartment building (12 units)", False),
    ("self-storage facility", False),
    ("bakery", True),
    ("office building (3 floors)", False),
    ("woodworking shop", False),
    ("daycare center", False),
    ("cold-storage warehouse", False),
    ("fitness studio", False),
)
NAME_PARTS = (
    (
        "Harbor",
        "Summit",
        "Cedar",
        "Granite",
        "Blue Heron",
        "Northgate",
        "Riverside",
        "Oak Park",
        "Lakeshore",
        "Pioneer",
    ),
    ("Holdings", "Partners", "Group", "Enterprises", "Co.", "Ventures", "Properties", "Trading"),
)
UNICODE_NAMES = (
    "Café Señorita LLC",
    "Bäckerei Müller GmbH",
    "株式会社さくら食品",
    "Ñandú Logística S.A.",
    "Crème & Co 🥐",
)
TIVS = (450_000, 900_000, 1_250_000, 2_400_000, 3_800_000, 5_500_000, 7_400_000, 12_000_000)
CONSTRUCTIONS = ("frame", "joisted masonry", "non-combustible", "masonry non-combustible", "fire resistive")
QUESTIONS = (
    "Should we bind this {lob} risk for {name}?",
    "Please recommend approve/decline/refer for the {lob} submission from {name}.",
    "New business submission ({lob}) for {name}: can we offer terms?",
    "Renewal review for {name} ({lob}). Recommend a decision.",
)
GENERIC_CONTEXT = (
    (
        "UW-RULE-0003",
        "General appetite: small commercial property risks with TIV up to $5,000,000 are within delegated authority.",
    ),
    (
        "UW-RULE-0011",
        "All submissions require a completed ACORD 140 property section and a signed statement of values.",
    ),
    ("UW-RULE-0019", "Renewals with no material change in exposure may be processed at the expiring terms."),
    ("UW-RULE-0027", "Protection class 1-6 is preferred; classes 9-10 require inspection before binding."),
    ("MKT-NOTE-0402", "Market note: reinsurance capacity for coastal wind remains constrained through Q2."),
)
REFER_REASONS = {
    "tiv": "TIV exceeds delegated authority; needs senior underwriter sign-off.",
    "flood": "Special flood hazard area requires flood underwriting review and elevation certificate.",
    "claims": "Loss history needs verified loss runs before terms can be offered.",
    "age": "Building age requires updated roof, electrical and plumbing certificates.",
    "cooking": "Cooking exposure without a UL 300 hood suppression system needs engineering review.",
    "wildfire": "Elevated wildfire score requires defensible-space inspection.",
}
SYSTEM_PROMPT = (
    "You are Athena, an underwriting assistant for commercial property insurance. Recommend approve, "
    "decline or refer. Base every statement on CONTEXT DATA and cite items as [n]. Never include "
    "personal data of applicants in the rationale."
)
INSTRUCTIONS = (
    'Respond with JSON: {"decision": "approve|decline|refer", "rationale": "<text citing [n]>", '
    '"refer_reason": "<required when decision is refer>", "confidence": <0..1>}'
)
LONG_FILLER = (
    "The underwriter notes that the statement of values was reviewed line by line, the occupancy "
    "description matches the inspection report, and no additional exposures were identified. "
)
PII_SNIPPETS = (
    "Broker contact: {first}.{last}@example.com, phone (555) 01{d2}-{d4}.",
    "Premium to be charged to card 4111 1111 1111 1111 on file.",
    "Applicant SSN {ssn} confirmed against the application.",
    "Call the insured directly on +1 415 555 01{d2} or email {first}{d2}@mailinator.com.",
    "Deposit paid with card 5555-5555-5555-4444; owner id {ssn}.",
)
FIRST_NAMES = ("maria", "john", "wei", "fatima", "liam", "aiko", "carlos", "nina")
LAST_NAMES = ("garcia", "smith", "chen", "khan", "murphy", "tanaka", "silva", "novak")
EMOJI = ("🔥", "🌊", "🏚️", "✅", "⚠️")


# -- one trace ------------------------------------------------------------------------------


_MINUTE_PREFIX: dict[tuple[int, int, int, int, int], str] = {}


def _ts(value: datetime) -> str:
    """`2026-11-19T13:45:12.345Z`; the minute prefix is cached (strftime dominated the profile)."""
    key = (value.year, value.month, value.day, value.hour, value.minute)
    prefix = _MINUTE_PREFIX.get(key)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 100_000:
            _MINUTE_PREFIX.clear()
        prefix = _MINUTE_PREFIX[key] = value.strftime("%Y-%m-%dT%H:%M:")
    return f"{prefix}{value.second:02d}.{value.microsecond // 1000:03d}Z"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _TraceBuilder:
    """Builds the rows of one trace from one rng draw sequence (deterministic)."""

    def __init__(self, rng: random.Random, base_time: datetime, hours: float) -> None:
        self.rng = rng
        self.base_time = base_time
        self.hours = hours

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _time(self, value: datetime) -> str:
        return _ts(value)

    def _trace_start(self) -> datetime:
        return self.base_time - timedelta(seconds=self.rng.uniform(60.0, self.hours * 3600.0))

    def build(self, defect: str | None, missing_id: str | None) -> GeneratedTrace:
        rng = self.rng
        unicode_case = defect == "unicode"
        trace_id: str | None = self._hex(128)
        start = self._trace_start()
        loc = rng.choice(UNICODE_LOCATIONS if unicode_case else LOCATIONS)
        city, region, country, lat, lon, flood_zone, coast_mi, wildfire = loc
        business, cooking = rng.choice(BUSINESSES)
        name = rng.choice(UNICODE_NAMES) if unicode_case else f"{rng.choice(NAME_PARTS[0])} {rng.choice(NAME_PARTS[1])}"
        construction = rng.choice(CONSTRUCTIONS)
        year_built = rng.randint(1950, 2023)
        age = start.year - year_built
        tiv = rng.choices(TIVS, weights=(22, 22, 18, 14, 11, 6, 4, 3))[0]
        claims = rng.choices((0, 1, 2, 3, 4, 5), weights=(58, 24, 9, 5, 3, 1))[0]
        sprinklered = rng.random() < 0.55
        hood = cooking and rng.random() < 0.75
        vacant = rng.random() < 0.03
        case_id = f"CASE-{start.year}-{rng.randint(1, 999_999):06d}"
        lob = "commercial property"

        # Underwriting logic: the ground truth decision, the flags, and the context that supports it.
        supports: list[tuple[str, str, str]] = []  # (id, context text, rationale sentence)
        flags: list[str] = []
        severe = False
        refer_keys: list[str] = []
        if claims >= 4:
            severe = True
            flags.append(f"prior_claims: {claims} in last 5 years")
            supports.append(
                (
                    "UW-RULE-0210",
                    "More than three property losses in five years is outside appetite; decline unless losses are fully remediated.",
                    f"The applicant reported {claims} losses in five years, which is outside appetite",
                )
            )
        elif claims >= 2:
            refer_keys.append("claims")
            flags.append(f"prior_claims: {claims} in last 5 years")
            supports.append(
                (
                    "UW-RULE-0207",
                    "Two or three losses in five years: refer with verified loss runs.",
                    f"{claims} prior losses require verified loss runs",
                )
            )
        if vacant:
            severe = True
            flags.append("occupancy: vacant > 60 days")
            supports.append(
                (
                    "UW-RULE-0305",
                    "Vacant or unoccupied buildings (over 60 days) are prohibited risks.",
                    "the building has been vacant for more than 60 days, a prohibited risk",
                )
            )
        if construction == "frame" and coast_mi < 1.0:
            severe = True
            flags.append(f"wind: frame construction {coast_mi} mi from coast")
            supports.append(
                (
                    "UW-RULE-0118",
                    "Frame construction within 1 mile of the coast is declined without a wind mitigation certificate.",
                    "frame construction this close to the coast cannot be written without wind mitigation",
                )
            )
        if wildfire >= 85:
            severe = True
            flags.append(f"wildfire_score: {wildfire}/100")
            supports.append(
                (
                    "HAZ-WF-" + f"{wildfire:03d}",
                    f"Wildfire hazard score {wildfire}/100 for {city}; scores of 85 and above are outside appetite.",
                    f"the wildfire hazard score of {wildfire} is above the appetite limit",
                )
            )
        elif wildfire >= 60:
            refer_keys.append("wildfire")
            flags.append(f"wildfire_score: {wildfire}/100")
            supports.append(
                (
                    "HAZ-WF-" + f"{wildfire:03d}",
                    f"Wildfire hazard score {wildfire}/100 for {city}; 60-84 requires a defensible-space inspection.",
                    f"a wildfire score of {wildfire} needs a defensible-space inspection",
                )
            )
        if flood_zone in ("AE", "VE", "A") and tiv > 1_000_000:
            refer_keys.append("flood")
            flags.append(f"flood_zone: {flood_zone}")
            supports.append(
                (
                    f"HAZ-FL-{flood_zone}",
                    f"FEMA flood zone {flood_zone} at {city}, {region}: special flood hazard area; TIV above $1,000,000 needs flood review.",
                    f"the location is in special flood hazard area {flood_zone}",
                )
            )
        if tiv > 5_000_000:
            refer_keys.append("tiv")
            flags.append(f"tiv: ${tiv:,} (authority limit $5,000,000)")
            supports.append(
                (
                    "UW-RULE-0042",
                    "Delegated authority is limited to $5,000,000 TIV per location; larger risks need senior sign-off.",
                    f"the TIV of ${tiv:,} exceeds delegated authority",
                )
            )
        if age > 60 and construction in ("frame", "joisted masonry"):
            refer_keys.append("age")
            flags.append(f"building_age: {age} years")
            supports.append(
                (
                    "UW-RULE-0131",
                    "Combustible buildings older than 60 years need updated roof, electrical and plumbing certificates.",
                    f"the building is {age} years old and needs updated systems certificates",
                )
            )
        if cooking and not hood:
            refer_keys.append("cooking")
            flags.append("cooking: no UL 300 hood suppression")
            supports.append(
                (
                    "UW-RULE-0152",
                    "Commercial cooking requires a UL 300 compliant hood suppression system with semi-annual service.",
                    "cooking operations lack a UL 300 hood suppression system",
                )
            )
        if not sprinklered and tiv > 2_000_000:
            flags.append("sprinklers: none")
        decision = "decline" if severe else ("refer" if refer_keys else "approve")
        if decision == "approve":
            supports.append(
                (
                    "UW-RULE-0003",
                    GENERIC_CONTEXT[0][1],
                    f"the ${tiv:,} TIV {construction} risk is within delegated authority and appetite",
                )
            )
            if sprinklered:
                supports.append(
                    (
                        "UW-RULE-0064",
                        "Fully sprinklered buildings with central-station monitoring qualify for preferred rates.",
                        "the building is sprinklered, which qualifies it for preferred rates",
                    )
                )

        # Context: the supporting items plus distractors, shuffled; citations follow the order.
        used = {s[0] for s in supports}
        distractors = [g for g in GENERIC_CONTEXT if g[0] not in used]
        n_distract = rng.randint(1, 2)
        context: list[tuple[str, str, str | None]] = [(i, t, s) for i, t, s in supports[:5]]
        context += [(i, t, None) for i, t in rng.sample(distractors, n_distract)]
        rng.shuffle(context)
        sentences = [(pos + 1, s) for pos, (_, _, s) in enumerate(context) if s]
        verdict = {
            "approve": "Recommend approval",
            "decline": "Recommend declining",
            "refer": "Recommend referral",
        }[decision]
        body = "; ".join(f"{s} [{n}]" for n, s in sentences)
        tail = f"Flags reviewed: {len(flags)}." if flags else "No underwriting flags were raised."
        refer_reason: str | None = REFER_REASONS[refer_keys[0]] if decision == "refer" and refer_keys else None
        confidence = round(rng.uniform(0.55, 0.97), 2)

        # Defects in the model's answer.
        out_decision: Any = decision
        if defect == "dangling_citation":
            body += f" [{len(context) + rng.randint(1, 4)}]"
        elif defect == "wrong_citation":
            body += f" [UW-RULE-{rng.randint(900, 999):04d}]"
        elif defect == "no_citations":
            body = "; ".join(s for _, s in sentences)
        elif defect == "pii":
            tail += " " + rng.choice(PII_SNIPPETS).format(
                first=rng.choice(FIRST_NAMES),
                last=rng.choice(LAST_NAMES),
                d2=f"{rng.randint(0, 99):02d}",
                d4=f"{rng.randint(0, 9999):04d}",
                ssn=f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}",
            )
        elif defect == "unicode":
            tail += f" Résumé du dossier: risque évalué {rng.choice(EMOJI)} — 審査済み."
        elif defect == "very_long":
            tail += " " + LONG_FILLER * rng.randint(60, 200)
        elif defect == "refer_without_reason":
            out_decision, refer_reason, verdict = "refer", None, "Recommend referral"
        rationale = f"{verdict} for {name}: {body}. {tail}"
        if defect == "missing_decision":
            out_decision = rng.choice((None, "", "maybe", "MISSING"))
        answer: dict[str, Any] = {"decision": out_decision, "rationale": rationale, "confidence": confidence}
        if refer_reason is not None and out_decision == "refer":
            answer["refer_reason"] = refer_reason
        if defect == "missing_decision" and answer["decision"] == "MISSING":
            del answer["decision"]
        output_raw: str | None = _dump(answer)
        if defect == "empty_output":
            output_raw = rng.choice(("", None))
        elif defect == "malformed_json":
            assert output_raw is not None
            output_raw = output_raw[: rng.randint(20, max(21, len(output_raw) - 10))]

        # Prompt text.
        case_text = (
            f"Case {case_id}: {name}, a {business} at {city}, {region} ({country}). {construction.capitalize()} "
            f"construction, built {year_built}, TIV ${tiv:,}. {'Sprinklered' if sprinklered else 'Not sprinklered'}. "
            f"{claims} reported losses in the last 5 years."
            + (" Building currently vacant." if vacant else "")
            + (f" Note from broker: priorité haute {rng.choice(EMOJI)}" if unicode_case else "")
        )
        question = rng.choice(QUESTIONS).format(lob=lob, name=name)
        context_block = "\n".join(f"[{n}] ({cid}) {text}" for n, (cid, text, _) in enumerate(context, start=1))
        flags_block = "\n".join(f"- {f}" for f in flags) if flags else "- none"
        user_prompt = (
            f"CASE ASSESSMENT:\n{question}\n{case_text}\n\nCONTEXT DATA:\n{context_block}\n\n"
            f"UNDERWRITING FLAGS:\n{flags_block}\n\n{INSTRUCTIONS}"
        )
        location_prompt = (
            f"Extract the insured location from the case below.\n\nCASE:\n{case_text}\n\n"
            'Return JSON: {"city", "region", "country", "lat", "lon"}'
        )
        location_out = {"city": city, "region": region, "country": country, "lat": lat, "lon": lon}

        # Timing.
        loc_start = start + timedelta(milliseconds=rng.randint(5, 40))
        loc_end = loc_start + timedelta(milliseconds=rng.randint(300, 1400))
        look_start = loc_end + timedelta(milliseconds=rng.randint(2, 15))
        look_end = look_start + timedelta(milliseconds=rng.randint(40, 400))
        rec_start = look_end + timedelta(milliseconds=rng.randint(2, 15))
        rec_ms = rng.randint(1800, 9000) + (rng.randint(15000, 40000) if defect == "very_long" else 0)
        rec_end = rec_start + timedelta(milliseconds=rec_ms)
        end = rec_end + timedelta(milliseconds=rng.randint(3, 30))

        environment = "production" if rng.random() < 0.95 else "staging"
        user_id = f"uw-{rng.randint(1, 40):04d}"
        session_id = f"sess-{case_id.lower()}"
        release = rng.choice(("athena-1.8.2", "athena-1.8.2", "athena-1.9.0"))
        prompt_version = 8 if release == "athena-1.9.0" else 7
        tags = ["athena", "underwriting", "commercial-property"]
        common = {
            "projectId": PROJECT_ID,
            "environment": environment,
            "userId": user_id,
            "sessionId": session_id,
            "traceName": TRACE_NAME,
            "tags": tags,
            "release": release,
            "bookmarked": False,
            "public": False,
            "version": release,
        }
        root_id, loc_id, look_id, rec_id = self._hex(64), self._hex(64), self._hex(64), self._hex(64)
        root_input = {
            "case_id": case_id,
            "question": question,
            "case": case_text,
            "applicant": {"name": name, "business": business},
        }
        root_output: Any = answer | {"case_id": case_id} if output_raw is not None else None
        if defect in ("empty_output", "malformed_json"):
            root_output = {"case_id": case_id, "error": "model output could not be parsed", "decision": None}

        rows: list[dict[str, Any]] = [
            self._row(
                common,
                root_id,
                trace_id,
                None,
                "SPAN",
                TRACE_NAME,
                start,
                end,
                _dump(root_input),
                _dump(root_output) if root_output is not None else None,
                {"case_id": case_id, "line_of_business": "commercial_property", "channel": "underwriter-workbench"},
            ),
            self._generation(
                common,
                loc_id,
                trace_id,
                root_id,
                "location-extraction",
                loc_start,
                loc_end,
                _dump([{"role": "user", "content": location_prompt}]),
                _dump(location_out),
                "gpt-4.1-mini",
                LOCATION_PROMPT_NAME,
                3,
                len(location_prompt) // 4,
                40,
            ),
            self._row(
                common,
                look_id,
                trace_id,
                root_id,
                "SPAN",
                "rule-lookup",
                look_start,
                look_end,
                _dump({"query": case_text, "location": f"{city}, {region}", "top_k": len(context)}),
                _dump(
                    {
                        "items": [
                            {"id": cid, "text": text, "score": round(0.9 - 0.07 * pos, 2)}
                            for pos, (cid, text, _) in enumerate(context)
                        ]
                    }
                ),
                {"index": "underwriting-guidelines-v7", "retriever": "hybrid-bm25-embedding"},
            ),
            self._generation(
                common,
                rec_id,
                trace_id,
                root_id,
                "recommendation",
                rec_start,
                rec_end,
                _dump([{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt}]),
                output_raw,
                "gpt-4.1",
                PROMPT_NAME,
                prompt_version,
                (len(SYSTEM_PROMPT) + len(user_prompt)) // 4,
                len(output_raw or "") // 4,
            ),
        ]
        if output_raw is None or output_raw == "" or defect == "malformed_json":
            rows[3]["level"] = "WARNING"
            rows[3]["statusMessage"] = "empty completion" if not output_raw else "finish_reason=length"

        if defect == "missing_fields":
            variant = rng.choices(MISSING_FIELD_VARIANTS, weights=(3, 3, 3, 1))[0]
            if variant == "no_prompt":
                rows[3]["input"] = None
            elif variant == "no_lookup":
                del rows[2]
            elif variant == "no_root_output":
                rows[0]["output"] = None
                rows[0]["endTime"] = None
                rows[0]["latency"] = None
                rows[0]["metadata"] = None
            else:
                del rows[3]
        if missing_id is not None:
            trace_id = None if missing_id == "null" else missing_id
            for row in rows:
                row["traceId"] = trace_id
        return GeneratedTrace(trace_id=trace_id, defect=defect, decision=decision, rows=rows)

    def _row(
        self,
        common: dict[str, Any],
        obs_id: str,
        trace_id: str | None,
        parent_id: str | None,
        type_: str,
        name: str,
        start: datetime,
        end: datetime,
        input_raw: str | None,
        output_raw: str | None,
        metadata: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A row with every ObservationV2 field, in the spec's order."""
        return {
            "id": obs_id,
            "traceId": trace_id,
            "startTime": self._time(start),
            "endTime": self._time(end),
            "projectId": common["projectId"],
            "parentObservationId": parent_id,
            "type": type_,
            "isRootObservation": parent_id is None,
            "name": name,
            "level": "DEFAULT",
            "statusMessage": None,
            "version": common["version"],
            "environment": common["environment"],
            "bookmarked": common["bookmarked"],
            "public": common["public"],
            "userId": common["userId"],
            "sessionId": common["sessionId"],
            "completionStartTime": None,
            "createdAt": self._time(start),
            "updatedAt": self._time(end + timedelta(milliseconds=250)),
            "input": input_raw,
            "output": output_raw,
            "metadata": metadata,
            "providedModelName": None,
            "internalModelId": None,
            "modelParameters": None,
            "usageDetails": None,
            "costDetails": None,
            "totalCost": None,
            "usagePricingTierName": None,
            "promptId": None,
            "promptName": None,
            "promptVersion": None,
            "latency": round((end - start).total_seconds(), 3),
            "timeToFirstToken": None,
            "modelId": None,
            "inputPrice": None,
            "outputPrice": None,
            "totalPrice": None,
            "traceName": common["traceName"],
            "tags": common["tags"],
            "release": common["release"],
        }

    def _generation(
        self,
        common: dict[str, Any],
        obs_id: str,
        trace_id: str | None,
        parent_id: str,
        name: str,
        start: datetime,
        end: datetime,
        input_raw: str | None,
        output_raw: str | None,
        model: str,
        prompt_name: str,
        prompt_version: int,
        input_tokens: int,
        output_tokens: int,
    ) -> dict[str, Any]:
        row = self._row(common, obs_id, trace_id, parent_id, "GENERATION", name, start, end, input_raw, output_raw, {})
        price_in, price_out = (2e-06, 8e-06) if model == "gpt-4.1" else (4e-07, 1.6e-06)
        cost_in, cost_out = round(input_tokens * price_in, 8), round(output_tokens * price_out, 8)
        ttft = round(min((end - start).total_seconds(), 0.25 + self.rng.random() * 0.8), 3)
        row.update(
            {
                "metadata": {"ls_provider": "openai", "ls_model_name": model},
                "completionStartTime": self._time(start + timedelta(seconds=ttft)),
                "providedModelName": model,
                "internalModelId": f"b9854a5c92dc496b997d99d2{'41' if model == 'gpt-4.1' else '4m'}",
                "modelParameters": {"temperature": "0.2", "max_tokens": "1200"},
                "usageDetails": {"input": input_tokens, "output": output_tokens, "total": input_tokens + output_tokens},
                "costDetails": {"input": cost_in, "output": cost_out, "total": round(cost_in + cost_out, 8)},
                "totalCost": round(cost_in + cost_out, 8),
                "usagePricingTierName": "Standard",
                "promptId": f"prompt-{prompt_name}-v{prompt_version}",
                "promptName": prompt_name,
                "promptVersion": prompt_version,
                "timeToFirstToken": ttft,
                "modelId": f"b9854a5c92dc496b997d99d2{'41' if model == 'gpt-4.1' else '4m'}",
                "inputPrice": f"{price_in:.7f}",
                "outputPrice": f"{price_out:.7f}",
                "totalPrice": None,
            }
        )
        return row


# -- templates: the fast path for benchmark-sized files ----------------------------------------

_PLACEHOLDER = re.compile(r'"\\u0001([IT])(\d+)\\u0001"')


class _TemplateBuilder(_TraceBuilder):
    """Builds a trace whose ids and times are placeholders, so it can be stamped out many times.

    Filling a template is string joining, about 20x cheaper than building and JSON-encoding a
    trace; benchmarks writing 100,000 traces use a few thousand templates.
    """

    def __init__(self, rng: random.Random, base_time: datetime, hours: float) -> None:
        super().__init__(rng, base_time, hours)
        self._ids = 0

    def build(self, defect: str | None, missing_id: str | None) -> GeneratedTrace:
        self._ids = 0
        return super().build(defect, missing_id)

    def _hex(self, bits: int) -> str:
        self._ids += 1
        return f"\x01I{self._ids - 1}\x01"

    def _trace_start(self) -> datetime:
        return self.base_time

    def _time(self, value: datetime) -> str:
        return f"\x01T{round((value - self.base_time).total_seconds() * 1000)}\x01"


@dataclass
class _Template:
    """A trace's JSONL text as a `str.format` pattern: fields 0..ids-1 are ids, then times."""

    pattern: str
    ids: int
    offsets: list[timedelta]  # the distinct times of the trace, relative to its start
    rows: int
    defect: str | None
    decision: str | None

    @classmethod
    def compile(cls, trace: GeneratedTrace, encoder: json.JSONEncoder) -> _Template:
        text = "".join(encoder.encode(row) + "\n" for row in trace.rows)
        pieces = _PLACEHOLDER.split(text)
        holes = [(pieces[i + 1] == "I", int(pieces[i + 2])) for i in range(0, len(pieces) - 1, 3)]
        ids = 1 + max((v for is_id, v in holes if is_id), default=0)
        times = sorted({v for is_id, v in holes if not is_id})
        slot = {v: ids + n for n, v in enumerate(times)}
        out: list[str] = []
        for n, (is_id, value) in enumerate(holes):
            out.append(pieces[3 * n].replace("{", "{{").replace("}", "}}"))
            out.append(f"{{{value if is_id else slot[value]}}}")
        out.append(pieces[-1].replace("{", "{{").replace("}", "}}"))
        offsets = [timedelta(milliseconds=v) for v in times]
        return cls("".join(out), ids, offsets, len(trace.rows), trace.defect, trace.decision)

    def fill(self, rng: random.Random, start: datetime, missing_id: str | None) -> str:
        bits = rng.getrandbits
        values = [f'"{bits(128):032x}"'] + [f'"{bits(64):016x}"' for _ in range(self.ids - 1)]
        if missing_id is not None:
            values[0] = "null" if missing_id == "null" else f'"{missing_id}"'
        values.extend(f'"{_ts(start + offset)}"' for offset in self.offsets)
        return self.pattern.format(*values)


# -- many traces ------------------------------------------------------------------------------

# The v2 API's field groups (`fields=` parameter); `core` is always returned.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
    "basic": (
        "name",
        "level",
        "statusMessage",
        "version",
        "environment",
        "bookmarked",
        "public",
        "userId",
        "sessionId",
        "isRootObservation",
    ),
    "time": ("completionStartTime", "createdAt", "updatedAt"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": (
        "providedModelName",
        "internalModelId",
        "modelParameters",
        "modelId",
        "inputPrice",
        "outputPrice",
        "totalPrice",
    ),
    "usage": ("usageDetails", "costDetails", "totalCost", "usagePricingTierName"),
    "prompt": ("promptId", "promptName", "promptVersion"),
    "metrics": ("latency", "timeToFirstToken"),
    "trace_context": ("tags", "release", "traceName"),
}


def _field_filter(field_groups: Collection[str] | None) -> frozenset[str] | None:
    if field_groups is None:
        return None
    unknown = set(field_groups) - set(FIELD_GROUPS)
    if unknown:
        raise ValueError(f"unknown field group(s) {sorted(unknown)}; valid: {sorted(FIELD_GROUPS)}")
    return frozenset(f for g in {"core", *field_groups} for f in FIELD_GROUPS[g])


def _keep(trace: GeneratedTrace, fields: frozenset[str] | None) -> GeneratedTrace:
    if fields is not None:
        trace.rows = [{k: v for k, v in row.items() if k in fields} for row in trace.rows]
    return trace


def _missing_ids(rng: random.Random, n: int, defects: bool) -> dict[int, str]:
    """Which traces get an empty (`""`), null or blank trace id: about 1%, at least 2."""
    if not defects or n == 0:
        return {}
    count = min(n, max(2, round(n * MISSING_ID_RATE)))
    kinds = ("", "null", "   ")
    return {index: kinds[pos % len(kinds)] for pos, index in enumerate(sorted(rng.sample(range(n), count)))}


def _defect_plan(rng: random.Random, n: int, defects: bool) -> list[str | None]:
    """Each trace's defect: `round(n * weight)` of each kind (at least one of each from 100
    traces on), shuffled, so even a small sample shows the whole mix at the intended shares."""
    if not defects:
        return [None] * n
    plan: list[str | None] = []
    for name, weight in DEFECT_WEIGHTS.items():
        plan.extend([name] * max(round(n * weight), 1 if n >= 100 else 0))
    plan = plan[:n]
    plan.extend([None] * (n - len(plan)))
    rng.shuffle(plan)
    return plan


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def generate_traces(
    n: int,
    *,
    seed: int = 7,
    base_time: datetime = DEFAULT_BASE_TIME,
    hours: float = 48.0,
    defects: bool = True,
    field_groups: Collection[str] | None = None,
) -> Iterator[GeneratedTrace]:
    """Yield `n` traces, each built from scratch; deterministic given the arguments.

    Timestamps spread uniformly over the `hours` before `base_time`; traces come out in generation
    order, not time order (as an export of several pages would), so samplers must sort by time.
    `defects=False` gives clean traces only (no missing ids either). `field_groups` keeps only
    those groups of the v2 API (`core` always), as a `fields=` request would.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    fields = _field_filter(field_groups)
    rng = random.Random(seed)
    missing = _missing_ids(rng, n, defects)
    plan = _defect_plan(rng, n, defects)
    builder = _TraceBuilder(rng, _utc(base_time), hours)
    for index in range(n):
        yield _keep(builder.build(plan[index], missing.get(index)), fields)


def generate_rows(n: int, **options: Any) -> Iterator[dict[str, Any]]:
    """The observation rows of `generate_traces(n, ...)`, trace after trace."""
    for trace in generate_traces(n, **options):
        yield from trace.rows


AUTO_UNIQUE_LIMIT = 10_000
AUTO_TEMPLATES = 2_000


def write_traces(
    path: str | Path,
    n: int,
    *,
    seed: int = 7,
    base_time: datetime = DEFAULT_BASE_TIME,
    hours: float = 48.0,
    defects: bool = True,
    field_groups: Collection[str] | None = None,
    variety: int | Literal["auto"] | None = "auto",
) -> WriteStats:
    """Write `n` traces as JSONL observation rows to `path` (rows of a trace together).

    `variety` is the number of distinct trace bodies: None builds every trace from scratch (the
    bundled sample); an int stamps traces out of that many templates, each copy with fresh ids and
    times (about 20x faster, for benchmarks); "auto" is None up to 10,000 traces, else 2,000.
    Ids, times, defect shares and missing ids behave the same either way.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if variety == "auto":
        variety = None if n <= AUTO_UNIQUE_LIMIT else AUTO_TEMPLATES
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    stats = WriteStats()
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        if variety is None:
            for trace in generate_traces(
                n, seed=seed, base_time=base_time, hours=hours, defects=defects, field_groups=field_groups
            ):
                stats.traces += 1
                stats.rows += len(trace.rows)
                stats.defects[trace.defect or "clean"] += 1
                stats.decisions[trace.decision or "none"] += 1
                handle.write("".join(encoder.encode(row) + "\n" for row in trace.rows))
        else:
            _write_from_templates(
                handle, stats, n, seed, _utc(base_time), hours, defects, field_groups, variety, encoder
            )
    stats.bytes = target.stat().st_size
    return stats


def _write_from_templates(
    handle: TextIO,
    stats: WriteStats,
    n: int,
    seed: int,
    base_time: datetime,
    hours: float,
    defects: bool,
    field_groups: Collection[str] | None,
    variety: int,
    encoder: json.JSONEncoder,
) -> None:
    if variety < 1:
        raise ValueError("variety must be >= 1")
    fields = _field_filter(field_groups)
    rng = random.Random(seed)
    missing = _missing_ids(rng, n, defects)
    count = min(variety, n)
    plan = _defect_plan(rng, count, defects)
    builder = _TemplateBuilder(rng, base_time, hours)
    templates = [_Template.compile(_keep(builder.build(plan[i], None), fields), encoder) for i in range(count)]
    span = hours * 3600.0
    write = handle.write
    for index in range(n):
        template = templates[rng.randrange(len(templates))]
        start = base_time - timedelta(seconds=rng.uniform(60.0, span))
        write(template.fill(rng, start, missing.get(index)))
        stats.traces += 1
        stats.rows += template.rows
        stats.defects[template.defect or "clean"] += 1
        stats.decisions[template.decision or "none"] += 1


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return _utc(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m implementations.athena.generate_traces",
        description="Write synthetic athena traces as Langfuse v2 observation rows (JSONL).",
    )
    parser.add_argument("--n", type=int, default=300, help="number of traces (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="data/samples/athena_traces.jsonl")
    parser.add_argument(
        "--base-time",
        type=_parse_time,
        default=DEFAULT_BASE_TIME,
        help="end of the time range, ISO 8601 UTC (default 2026-11-20T00:00:00Z)",
    )
    parser.add_argument("--hours", type=float, default=48.0, help="traces spread over this many hours before base time")
    parser.add_argument("--no-defects", action="store_true", help="clean traces only")
    parser.add_argument(
        "--variety",
        type=int,
        default=None,
        help="stamp traces out of this many templates (fast, for benchmarks); default: auto",
    )
    parser.add_argument(
        "--fields",
        default=None,
        help=f"comma-separated v2 field groups to keep (default all): {','.join(FIELD_GROUPS)}",
    )
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    groups = [g.strip() for g in args.fields.split(",") if g.strip()] if args.fields else None
    try:
        stats = write_traces(
            args.out,
            args.n,
            seed=args.seed,
            base_time=args.base_time,
            hours=args.hours,
            defects=not args.no_defects,
            field_groups=groups,
            variety=args.variety if args.variety is not None else "auto",
        )
    except ValueError as exc:
        parser.error(str(exc))
    defects = ", ".join(f"{k}={v}" for k, v in sorted(stats.defects.items()))
    print(f"wrote {stats.traces} traces ({stats.rows} rows, {stats.bytes:,} bytes) to {args.out}", file=sys.stderr)
    print(f"defects: {defects}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
