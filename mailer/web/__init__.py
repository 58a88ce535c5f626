"""The web app: one-click unsubscribe, preferences, tracking, web version and staff console."""
