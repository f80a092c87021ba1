"""Monitoring: atmospheric and AO conditions, night overviews (pure functions)."""
