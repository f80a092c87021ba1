"""Level 3 science: relative astrometry, the stationary-background track, the proper-motion test
(bound / background / undetermined), grouping of detections into candidates, absolute magnitudes
and colour-magnitude diagrams, and their charts. Pure functions (numpy/astropy/scipy/matplotlib);
no database, no configuration.
"""
