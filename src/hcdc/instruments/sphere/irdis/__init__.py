"""SPHERE/IRDIS: metadata, raw frames, calibration masters, Level 1 reduction, night simulator."""
