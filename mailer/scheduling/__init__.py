"""Scheduling: blueprints become scheduled steps, due steps launch exactly once, and sends keep
to the sending window (working hours on Czech working days)."""
