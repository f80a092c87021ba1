"""hcdc.science."""
