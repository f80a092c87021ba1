"""SPHERE/ZIMPOL facts: detector geometry, keywords, readout modes, filters.

Sources (short names used below):

* *ESO QC bias* -- ESO quality-control page "SPHERE: ZIMPOL bias frames"
  (www.eso.org/observing/dfo/quality/SPHERE/qc_new/zpl_bias_qc1.html): two detectors
  (``DET CHIP NAME`` = Callas for CAM1, Bartoli for CAM2), raw frames with two extensions, one
  cube per detector, 1156 columns, read-out modes (``DET READ CURNAME``) StandardImaging,
  SlowPolarimetry and FastPolarimetry.
* *jmilli* -- J. Milli's public ZIMPOL reduction code (``ZimpolDataHandler``): per camera
  1024 rows x 1156 columns = 25 prescan, 512 columns read by the left ADC, 41 overscan, then the
  mirror image for the right ADC; odd rows are masked; in polarimetry even and odd rows hold the
  two modulation states, with the "0" and "pi" phases alternating frame by frame; de-interleaved
  pixels are rectangular and 2 columns are binned to get square ~7 mas pixels; dithering from
  ``INS3 POS3/POS4 POS`` (CAM1 x/y) and ``INS3 POS6/POS7 POS`` (CAM2), y offsets halved on the
  de-interleaved rows. Facts only are used; no code is copied.
* *Schmid 2018* -- Schmid et al. 2018, A&A 619, A9 ("SPHERE/ZIMPOL high resolution polarimetric
  imager I"): components (polarisation beam splitter feeding CCD1/CCD2, half-wave plate HWPZ,
  FLC modulator, tip-tilt mirrors for dithering), pixel scale 3.6 mas on a 1k x 1k field of
  3.6" x 3.6" (also the 3.6" ZIMPOL field used by :mod:`hcdc.archive.obscore`).
* *Keller 1994* -- C. U. Keller et al., SPIE 2265, 222: ZIMPOL CCDs have every other row covered
  by an opaque mask; during the exposure the charges are shifted between open and covered rows
  in synchrony with the modulation; a micro-lens array directs the light onto the open rows.
* *form* -- the ESO archive SPHERE query form vocabularies (shared/data/sphere_headers):
  ``INS3 OPTI5 NAME`` (CAM1 filter), ``INS3 OPTI6 NAME`` (CAM2), ``DET READ CURNAME`` values,
  ``DPR TECH`` values ``IMAGE``/``POLARIMETRY`` (+ ``,CORONOGRAPHY``).
* *calChecker* -- ESO calChecker: science types ``ZPL_SCI_IMG``, ``ZPL_SCI_P1`` (field
  stabilised) and ``ZPL_SCI_P2`` (pupil stabilised); setup keys ``INS3.OPTI2/5/6.NAME`` and the
  read-out mode. ESO QC raw types ``ZPL_BIAS_IMG/POL``, ``ZPL_DARK_IMG/POL``, ``ZPL_IFLAT_IMG/POL``.
* *public scripts* -- ``HIERARCH ESO OCS3 ZIMPOL POL STOKES`` = ``Qplus``/``Qminus``/``Uplus``/
  ``Uminus`` names the half-wave-plate position of a polarimetric file (several public ZIMPOL
  scripts read it to build Q and U cycles).

Values marked ASSUMPTION are not in these sources (no complete ZIMPOL raw header is in
shared/reference); the simulator and the reduction use the same values, so a real-data
reduction must check them.
"""

from __future__ import annotations

__all__ = [
    "CAMERAS",
    "CHIP_NAMES",
    "DATA_COLUMNS_PER_ADC",
    "DITHER_KEYWORDS",
    "FILTER_KEYWORDS",
    "FILTER_WAVELENGTH_NM",
    "GAIN_E_PER_ADU",
    "IMAGING_READOUTS",
    "OVERSCAN_COLUMNS",
    "PIXEL_SCALE_MAS",
    "POLARIMETRIC_READOUTS",
    "PRESCAN_COLUMNS",
    "RAW_COLUMNS",
    "RAW_ROWS",
    "READ_NOISE_E",
    "REDUCED_PIXEL_SCALE_MAS",
    "STABILISATION_BY_DEROTATOR",
    "STOKES_KEYWORD",
    "STOKES_VALUES",
    "camera_filter",
    "filter_wavelength_nm",
]

# --- Detectors (ESO QC bias, jmilli) -----------------------------------------------------------
CAMERAS = (1, 2)
#: ``DET CHIP NAME`` of each camera's CCD (ESO QC bias: CAM1 = Callas, CAM2 = Bartoli).
CHIP_NAMES = {1: "Callas", 2: "Bartoli"}
#: Rows of a raw frame; every odd row (0-based) is covered by the stripe mask (jmilli, Keller 1994).
RAW_ROWS = 1024
#: Columns of a raw frame: prescan + data (left ADC) + overscan | overscan + data (right ADC) + prescan.
PRESCAN_COLUMNS = 25
DATA_COLUMNS_PER_ADC = 512
OVERSCAN_COLUMNS = 41
RAW_COLUMNS = 2 * (PRESCAN_COLUMNS + DATA_COLUMNS_PER_ADC + OVERSCAN_COLUMNS)  # 1156 (ESO QC bias)

# --- Sky sampling (Schmid 2018, jmilli) --------------------------------------------------------
#: Pixel scale of one physical CCD pixel (mas): 1024 pixels span the 3.6" field.
PIXEL_SCALE_MAS = 3.6
#: After the row de-interleaving a pixel is 3.6 mas wide and 7.2 mas tall (two physical rows,
#: open + covered); hcdc bins two columns into one, giving square pixels of this size (mas).
REDUCED_PIXEL_SCALE_MAS = 2.0 * PIXEL_SCALE_MAS

# --- Detector electronics (ASSUMPTION: no value in the reference) -----------------------------
#: CCD gain (e-/ADU) and read noise (e- rms per frame) used by the simulator.
GAIN_E_PER_ADU = 1.5
READ_NOISE_E = 4.0

# --- Keywords ---------------------------------------------------------------------------------
#: Read-out modes (ESO QC bias, form); the imaging ones do not shift charges.
IMAGING_READOUTS = frozenset({"StandardImaging", "SnapShotImaging"})
POLARIMETRIC_READOUTS = frozenset({"SlowPolarimetry", "FastPolarimetry", "FastPolar_Window"})
#: Half-wave-plate position of a polarimetric file (public scripts).
STOKES_KEYWORD = "OCS3 ZIMPOL POL STOKES"
STOKES_VALUES = ("Qplus", "Qminus", "Uplus", "Uminus")
#: Filter wheels (form; calChecker setup keys): FW0 common to both arms, FW1 = CAM1, FW2 = CAM2.
FILTER_KEYWORDS = {0: "INS3 OPTI2 NAME", 1: "INS3 OPTI5 NAME", 2: "INS3 OPTI6 NAME"}
#: Dithering (jmilli): camera -> (x keyword, y keyword); values in physical pixels; the y offset
#: is halved on de-interleaved images. (jmilli also adds INS3 POS2 POS to CAM1's y; hcdc writes 0.)
DITHER_KEYWORDS = {1: ("INS3 POS3 POS", "INS3 POS4 POS"), 2: ("INS3 POS6 POS", "INS3 POS7 POS")}
#: INS4 DROT2 MODE -> ZIMPOL polarimetric mode (calChecker ZPL_SCI_P1 field-, P2 pupil-stabilised).
STABILISATION_BY_DEROTATOR = {"SKY": "P1", "ELEV": "P2"}

# --- Filters ----------------------------------------------------------------------------------
#: Central wavelengths (nm) of some ZIMPOL filters, as tabulated by Schmid 2018 (Table 3) and the
#: ESO ZIMPOL filter page. ASSUMPTION: recalled values, not checked against a stored copy; they
#: only set lambda/D in the simulator and the WAVELENGTH written in the products.
FILTER_WAVELENGTH_NM: dict[str, float] = {
    "V": 554.0,
    "N_R": 645.9,
    "N_I": 816.8,
    "VBB": 735.4,
    "R_PRIM": 626.3,
    "I_PRIM": 789.7,
    "CntHa": 644.9,
    "N_Ha": 656.3,
    "B_Ha": 655.6,
    "Cnt748": 747.4,
    "Cnt820": 817.3,
    "TiO_717": 716.8,
    "CH4_727": 730.4,
    "KI": 770.2,
}


def filter_wavelength_nm(name: str) -> float:
    """Central wavelength (nm) of a ZIMPOL filter; ``KeyError`` naming the known ones."""
    try:
        return FILTER_WAVELENGTH_NM[name]
    except KeyError:
        raise KeyError(
            f"unknown ZIMPOL filter {name!r}; known: {', '.join(sorted(FILTER_WAVELENGTH_NM))}"
        ) from None


def camera_filter(camera: int) -> str:
    """The filter-wheel keyword (without ``HIERARCH ESO``) of ``camera`` (1 or 2)."""
    if camera not in CAMERAS:
        raise ValueError(f"ZIMPOL camera must be 1 or 2, got {camera!r}")
    return FILTER_KEYWORDS[camera]
