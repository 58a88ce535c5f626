"""SDRUK Campaigns: the e-mail campaign pipeline of Sdružení knihoven ČR."""

__version__ = "0.1.0"
