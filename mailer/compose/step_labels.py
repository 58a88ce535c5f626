"""How staff call a campaign step: "hlavní rozeslání" for the launch, and for a reminder when
it goes out ("připomínka 10 dní po rozeslání", "připomínka 2 dny před akcí", "připomínka
2 dny před 3. termínem (8. dubna 2027, Olomouc)"), instead of the step's id („pripominka“,
„prakticke-informace-3“) that only campaign.toml needs."""

from __future__ import annotations

from datetime import timedelta

from mailer.compose.campaigns import Blueprint, Step, load_blueprint
from mailer.compose.czech import count_noun, format_day

LAUNCH_LABEL = "hlavní rozeslání"


def _span(delta: timedelta) -> str:
    if delta.total_seconds() % 86400 == 0:
        return count_noun(delta.days, "den", "dny", "dní")
    hours = round(delta.total_seconds() / 3600)
    return count_noun(hours, "hodinu", "hodiny", "hodin")


def describe_step(step: Step, blueprint: Blueprint | None = None) -> str:
    """A step as staff call it: "hlavní rozeslání", "připomínka 10 dní po rozeslání",
    "připomínka 2 dny před akcí", "připomínka 15. prosince 2026", and for a per-session step
    "připomínka 2 dny před 3. termínem" with the session's day and venue when the blueprint
    is given."""
    if step.is_launch:
        return LAUNCH_LABEL
    if step.after_launch is not None:
        return f"připomínka {_span(step.after_launch)} po rozeslání"
    if step.before_event is not None:
        return f"připomínka {_span(step.before_event)} před akcí"
    if step.before_session is not None:
        number = f"{step.session}. termínem" if step.session is not None else "termínem"
        label = f"připomínka {_span(step.before_session)} před {number}"
        occurrence = blueprint.session_of(step) if blueprint is not None else None
        if occurrence is not None and step.session is not None:
            label += f" ({format_day(occurrence.start)}, {occurrence.venue})"
        return label
    if step.at is not None:
        return f"připomínka {format_day(step.at)}"
    return "připomínka"


def session_label(blueprint: Blueprint, step: Step) -> str:
    """ "3. termín, 8. dubna 2027, Olomouc, Vědecká knihovna v Olomouci" for a per-session step
    ("" for another)."""
    occurrence = blueprint.session_of(step)
    if occurrence is None or step.session is None:
        return ""
    return f"{step.session}. termín, {format_day(occurrence.start)}, {occurrence.venue}"


def step_names(slug: str, step_name: str) -> tuple[str, str]:
    """(campaign title, step label) for a stored slug and step id; the ids themselves when the
    campaign cannot be loaded any more."""
    try:
        blueprint = load_blueprint(slug)
    except Exception:
        return slug, LAUNCH_LABEL if step_name == "launch" else step_name
    for step in blueprint.steps:
        if step.name == step_name:
            return blueprint.name, describe_step(step, blueprint)
    return blueprint.name, step_name
