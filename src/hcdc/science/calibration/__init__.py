"""hcdc.science.calibration."""
