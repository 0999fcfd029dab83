"""What the window says about the list as a whole: the counts in the status bar, the flagged share beside the
share the operating point flagged where its threshold was chosen (with the more specific points that flag
fewer), and the banner when AI triage is off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxr_desktop.inference.triage import PointRate
from cxr_desktop.ui.worklist_model import flag_name

if TYPE_CHECKING:
    from cxr_desktop.inference.triage import TriagePolicy
    from cxr_desktop.worklist.session import Snapshot


def counts_text(snapshot: Snapshot, ai_off: bool) -> str:
    counts = snapshot.counts
    if ai_off:
        return f"  {len(snapshot.rows)} studies · not scored: AI triage is off · {counts['error']} refused  "
    return (
        f"  {len(snapshot.rows)} studies · {counts['urgent']} suspected · {counts['check']} check film · "
        f"{counts['done']} scored · {counts['queued']} queued · {counts['error']} refused  "
    )


def flag_share_text(snapshot: Snapshot, policy: TriagePolicy | None, rates: list[PointRate]) -> str:
    """ "Suspected cardiomegaly: 262 of 952 scored, and 7 check films: 28% at or above the threshold; expected 28%
    at sensitivity 0.95 (...). Fewer flags (Ctrl+P): Youden 18%" ("" until a study is scored). The share counts
    the CHECK rows too (their score is above the threshold), so it compares with the operating point's rate."""
    scored = snapshot.counts["done"]
    if policy is None or scored == 0 or policy.research_mode:
        return ""
    urgent, check = snapshot.counts["urgent"], snapshot.counts["check"]
    text = f"{flag_name(policy.finding)}: {urgent} of {scored} scored"
    if check:
        text += f", and {check} check film{'s' if check > 1 else ''}"
    text += f": {(urgent + check) / scored:.0%} at or above the threshold"
    current = next((rate for rate in rates if rate.name == policy.operating_point), None)
    if current is not None and current.flag_rate is not None:
        text += f"; expected {current.flag_rate:.0%} at {point_name(current.name)} ({current.where})"
        fewer = [r for r in rates if r.flag_rate is not None and r.flag_rate < current.flag_rate - 0.005]
        if fewer:
            points = ", ".join(f"{point_name(r.name)} {r.flag_rate:.0%}" for r in sorted(fewer, key=_rate))
            text += f". Fewer flags (Ctrl+P): {points}"
    return text


def _rate(rate: PointRate) -> float:
    return rate.flag_rate or 0.0


def point_name(name: str) -> str:
    return name.replace("sensitivity_", "sensitivity ").replace("youden", "Youden")


def ai_off_text(message: str) -> str:
    """The banner when no model is loaded: the reason (the loader's message without its "Cannot load model
    PATH:" lead) and what still works."""
    reason = message.split(": ", 1)[1] if message.startswith("Cannot load model") and ": " in message else message
    return f"AI triage is off: {reason}. The studies can be read; none is scored or flagged."
