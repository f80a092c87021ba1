"""hcdc.instruments."""
