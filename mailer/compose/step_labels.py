"""How staff call a campaign step: "hlavní rozeslání" for the launch, and for a reminder when
it goes out ("připomínka 10 dní po rozeslání", "připomínka 2 dny před akcí"), instead of the
step's id („pripominka“) that only campaign.toml needs."""

from __future__ import annotations

from datetime import timedelta

from mailer.compose.campaigns import Step, load_blueprint
from mailer.compose.czech import count_noun, format_day

LAUNCH_LABEL = "hlavní rozeslání"


def _span(delta: timedelta) -> str:
    if delta.total_seconds() % 86400 == 0:
        return count_noun(delta.days, "den", "dny", "dní")
    hours = round(delta.total_seconds() / 3600)
    return count_noun(hours, "hodinu", "hodiny", "hodin")


def describe_step(step: Step) -> str:
    """A step as staff call it: "hlavní rozeslání", "připomínka 10 dní po rozeslání",
    "připomínka 2 dny před akcí", "připomínka 15. prosince 2026"."""
    if step.is_launch:
        return LAUNCH_LABEL
    if step.after_launch is not None:
        return f"připomínka {_span(step.after_launch)} po rozeslání"
    if step.before_event is not None:
        return f"připomínka {_span(step.before_event)} před akcí"
    if step.at is not None:
        return f"připomínka {format_day(step.at)}"
    return "připomínka"


def step_names(slug: str, step_name: str) -> tuple[str, str]:
    """(campaign title, step label) for a stored slug and step id; the ids themselves when the
    campaign cannot be loaded any more."""
    try:
        blueprint = load_blueprint(slug)
    except Exception:
        return slug, LAUNCH_LABEL if step_name == "launch" else step_name
    for step in blueprint.steps:
        if step.name == step_name:
            return blueprint.name, describe_step(step)
    return blueprint.name, step_name
