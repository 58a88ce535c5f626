"""Campaign blueprints to message bytes: load, validate, compile once, fill per recipient."""
