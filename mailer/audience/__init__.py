"""Who receives mail: contact import and segments (the only place that picks recipients)."""
