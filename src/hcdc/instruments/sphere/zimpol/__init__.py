"""SPHERE/ZIMPOL: the visible imaging polarimeter (two CCD cameras behind a polarising beam splitter).

* :mod:`.constants` -- detector geometry, keywords, filters, with their sources;
* :mod:`.raw` -- the raw frame layout (pre/overscan, the stripe-mask row interleaving) and its
  re-ordering into images;
* :mod:`.metadata` -- observing modes and calibration-association rules (used by the SPHERE
  instrument plugin, :mod:`hcdc.instruments.sphere.metadata`);
* :mod:`.simulate` -- raw nights with known truth (``hcdc simulate zimpol``);
* :mod:`.level1` -- the reduction: imaging Level 1 cubes and polarimetric Stokes maps.
"""
