"""hcdc.science.calibration: Level 1 calibration steps as pure functions on arrays.

* :mod:`~hcdc.science.calibration.timing`: per-DIT times, parallactic and derotation angles.
* :mod:`~hcdc.science.calibration.darks`: sigma-clipped masters (dark, background, sky).
* :mod:`~hcdc.science.calibration.flats`: master flat and non-linear pixels from lamp flats.
* :mod:`~hcdc.science.calibration.badpixels`: hot-pixel maps, bad-pixel interpolation.
* :mod:`~hcdc.science.calibration.background`: background priority, frame calibration, field split.
* :mod:`~hcdc.science.calibration.centering`: waffle-spot, PSF and point-symmetry centring.
* :mod:`~hcdc.science.calibration.cubes`: recentring, anamorphism, flux normalisation.

No file I/O and no instrument imports here: SPHERE constants are passed in by
:mod:`hcdc.instruments.sphere.irdis.level1` from :mod:`hcdc.instruments.sphere.constants`.
"""
