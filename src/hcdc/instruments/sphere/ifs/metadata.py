"""SPHERE/IFS metadata: spectral modes, detector-flat lamps, wavelength ranges and
calibration-association rules (what exists before an IFS reduction)."""

from __future__ import annotations

from hcdc.instruments.rules import Need
from hcdc.instruments.sphere.rules import SPHERE_BACKGROUND_SOURCE

#: IFS: INS2 COMB IFS / INS2 MODE -> mode. OBS_H and IFS-H mean YJH (sphere.md gotcha).
IFS_MODE_BY_COMB: dict[str, str] = {"OBS_YJ": "IFS-YJ", "OBS_H": "IFS-YJH"}
IFS_MODE_BY_INS2: dict[str, str] = {"NIROBS": "IFS-YJ", "IFS-H": "IFS-YJH"}

#: IFS detector-flat lamps: INS2 COMB IFS ``CAL_<lamp>_<YJ|YJH>`` (vlt-sphere sph_ifs_cal_detector_flat).
IFS_FLAT_LAMPS: dict[str, str] = {
    "CAL_BB_2": "BB",  # white lamp 5
    "CAL_NB1_1": "NB1",  # 1020 nm, lamp 1
    "CAL_NB2_1": "NB2",  # 1230 nm, lamp 2
    "CAL_NB3_1": "NB3",  # 1300 nm, lamp 3
    "CAL_NB4_2": "NB4",  # 1550 nm, lamp 4 (YJH only)
}

#: IFS extraction ranges [µm] (charis-dep, sphere.md a.4): YJ 940-1370 nm, YJH 920-1700 nm.
IFS_WAVELENGTHS_UM: dict[str, tuple[float, float]] = {"IFS-YJ": (0.94, 1.37), "IFS-YJH": (0.92, 1.70)}


def ifs_mode(comb: str | None, ins2_mode: str | None) -> str | None:
    """IFS spectral mode (IFS-YJ or IFS-YJH) from INS2 COMB IFS, else INS2 MODE."""
    if comb in IFS_MODE_BY_COMB:
        return IFS_MODE_BY_COMB[comb]
    if comb and comb.startswith("CAL_"):
        if comb.endswith("_YJH"):
            return "IFS-YJH"
        if comb.endswith("_YJ"):
            return "IFS-YJ"
    return IFS_MODE_BY_INS2.get(ins2_mode or "")


def ifs_flat_lamp(comb: str | None) -> str | None:
    """Lamp tag (BB, NB1..NB4) of an IFS detector flat from ``CAL_<lamp>_<YJ|YJH>``."""
    if not comb or not comb.startswith("CAL_"):
        return None
    stem = comb.rsplit("_", 1)[0]
    return IFS_FLAT_LAMPS.get(stem)


#: IFS detector-flat lamps per mode: YJ uses BB + NB1-3, YJH adds NB4 (vlt-sphere).
IFS_LAMPS_BY_MODE: dict[str, tuple[str, ...]] = {
    "IFS-YJ": ("BB", "NB1", "NB2", "NB3"),
    "IFS-YJH": ("BB", "NB1", "NB2", "NB3", "NB4"),
}

#: The IFS calibration dark: DIT 1.65 s (actual 1.650726 s), DARK or DARK,BACKGROUND.
IFS_CALIB_DARK_DIT_S = 1.65


def _ifs_detector_flat(lamp: str) -> Need:
    modes = tuple(mode for mode, lamps in IFS_LAMPS_BY_MODE.items() if lamp in lamps)
    return Need(
        f"detector_flat:{lamp}",
        kinds=("DETECTOR_FLAT",),
        match=("mode",),
        fixed={"extra.ifs_flat_lamp": lamp},
        when={"mode": modes},
        count=2,
        min_count=2,
        distinct="dit",
        source="vlt-sphere check_files_association: 2 raw FLAT,LAMP per lamp (two DITs), closest in time",
    )


#: calibrations an IFS science dataset needs (sphere.md section b)
IFS_RULES: tuple[Need, ...] = (
    Need(
        "background",
        kinds=("SKY", "BACKGROUND", "DARK"),
        match=("dit", "readout_mode"),
        match_by_kind={"SKY": ("dit", "filter", "nd_filter", "readout_mode")},
        source=SPHERE_BACKGROUND_SOURCE,
    ),
    *(_ifs_detector_flat(lamp) for lamp in IFS_FLAT_LAMPS.values()),
    Need("specpos", kinds=("SPECPOS",), match=("mode",), source="vlt-sphere; spherical (1 day)"),
    Need("wave", kinds=("WAVE",), match=("mode",), source="vlt-sphere; spherical (1 day)"),
    Need("ifu_flat", kinds=("IFU_FLAT",), match=("mode",), source="vlt-sphere: FLAT,LAMP DPR TECH=IFU"),
    Need(
        "calib_dark",
        kinds=(("DARK", "BACKGROUND"),),
        fixed={"dit": IFS_CALIB_DARK_DIT_S},
        source="vlt-sphere: dark for specpos/wave/flats, DIT 1.65 s (mandatory)",
    ),
)
