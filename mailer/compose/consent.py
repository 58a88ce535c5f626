"""Which recipients a message may track individually, from their tracking consent: the one
rule that compose (pixel and personal links), the outbox (the `individually_tracked` record)
and the results read, so the three cannot disagree.

A contact who denied gets no open pixel at all and only anonymous click links; "unknown"
follows the TRACKING_WITHOUT_CONSENT setting (see mailer.settings)."""

from __future__ import annotations

from mailer.models import TrackingConsent

__all__ = ["individually_tracked", "tracked_consents"]


def tracked_consents(policy: str) -> frozenset[str]:
    """The consent values tracked individually under a TRACKING_WITHOUT_CONSENT policy."""
    if policy == "anonymous":
        return frozenset({TrackingConsent.GRANTED.value})
    return frozenset({TrackingConsent.GRANTED.value, TrackingConsent.UNKNOWN.value})


def individually_tracked(tracking: str, consent: str | None, policy: str) -> bool:
    """Whether a message of a campaign with `tracking` (individual/anonymous/off) to a contact
    with `consent` carries the open pixel and personal click links. A message to no contact
    (None) follows "unknown"."""
    if tracking != "individual":
        return False
    return (consent or TrackingConsent.UNKNOWN.value) in tracked_consents(policy)
