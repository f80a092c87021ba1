"""hcdc.archive."""
