"""Opens, clicks, unsubscribes, bounces and complaints: recorded through one write path."""
