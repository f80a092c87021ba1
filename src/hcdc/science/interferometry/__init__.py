"""Optical interferometry science (pure functions on arrays): visibility models of stars and
binaries and their fits to calibrated V² / closure phases.

* :mod:`.models`: uniform disk, linearly limb-darkened disk, binary (complex visibilities);
* :mod:`.fitting`: global-then-local fits (a grid over the parameter space set by the data's
  spatial frequencies, then a bounded local refinement), formal uncertainties, bulk fits.

Conventions: angles in milliarcseconds (mas); baselines ``u``, ``v`` and wavelengths in metres;
``u`` towards east, ``v`` towards north (OIFITS); closure phases in degrees; the complex
visibility of a point source offset by (Δα, Δδ) is ``exp(-2πi (u Δα + v Δδ) / λ)``.
"""
