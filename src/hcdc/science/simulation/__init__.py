"""hcdc.science.simulation."""
