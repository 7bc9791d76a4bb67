"""Alerts: who must know about an incident, telling them, and proving it."""
