"""The guidance catalogue and the portal UI."""
