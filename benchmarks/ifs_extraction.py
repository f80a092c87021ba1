"""Speed of the IFS chain on full 2048 x 2048 frames: rendering a raw frame (simulator), the
calibration (grid registration, spectra positions, wavelength solution, IFU response) and the
extraction of one frame into the (39, 291, 291) cube (issue 16: <= 2 s per frame on 2 cores).

Frames are made in memory with the simulator's pieces (no files): white lamp, lasers, IFU flat and
a FLUX-like star frame, with the detector model's noise, so that the timings are of the real code
paths. Usage: ``python benchmarks/ifs_extraction.py [--mode YJ|YJH] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs import simulate as ifs_sim
from hcdc.instruments.sphere.ifs.extraction import calibrate_ifs, extract_cube
from hcdc.science.simulation import ifs as ifsim
from hcdc.science.simulation import irdis as sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", default="YJ", choices=["YJ", "YJH"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    optics = geo.ifs_mode_optics(args.mode)
    rng = np.random.default_rng(0)
    shape = geo.IFS_RAW_SHAPE
    grid = geo.lenslet_grid(shape, origin_xy=(1024.3, 1022.8))
    detector = sim.make_detector(
        shape, rng, field_width=shape[1], gain=sc.IFS_GAIN_E_PER_ADU, read_noise_e=10.0
    )
    offsets, waves, widths = ifs_sim._samples(optics)
    response = np.clip(rng.normal(1.0, 0.04, len(grid)), 0.5, 1.5)

    def frame(density: np.ndarray, dit: float) -> np.ndarray:
        flux = density * widths[None, :] * response[:, None]
        light = ifsim.render_microspectra(shape, grid.trace_xy, offsets, flux, geo.SPECTRAL_PSF_SIGMA_PX)
        return (
            detector.readout(light, dit, rng).astype(np.float64) - detector.bias - detector.dark_current * dit
        )

    t0 = time.perf_counter()
    white = frame(np.full((len(grid), waves.size), ifs_sim.WHITE_LAMP_ADU_S_NM), 1.65)
    render_s = time.perf_counter() - t0
    lines = np.asarray(optics.lasers_nm)
    laser_flux = np.full((len(grid), lines.size), ifs_sim.LASER_ADU_S) * response[:, None]
    lasers = (
        detector.readout(
            ifsim.render_microspectra(
                shape, grid.trace_xy, optics.trace_offset_px(lines), laser_flux, geo.SPECTRAL_PSF_SIGMA_PX
            ),
            1.65,
            rng,
        )
        - detector.bias
        - detector.dark_current * 1.65
    )
    ifu = frame(np.full((len(grid), waves.size), ifs_sim.WHITE_LAMP_ADU_S_NM), 1.65)
    scene = ifs_sim.science_scene("flux", ifs_sim.DEFAULT_COMPANIONS, (3.0, -2.0), 30.0, 0.0, "ND_2.0", None)
    density = ifsim.lenslet_spectra(
        scene, grid.sky_xy_mas, waves, geo.LENSLET_PITCH_SKY_MAS**2 * np.sqrt(3) / 2
    )
    star = frame(density, 4.0) / detector.flat
    t0 = time.perf_counter()
    calibration = calibrate_ifs(white / detector.flat, lasers / detector.flat, ifu / detector.flat, args.mode)
    calib_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        cube = extract_cube(star, calibration)
        times.append(time.perf_counter() - t0)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"python {platform.python_version()}"
    )
    print(f"mode {args.mode}: {len(grid)} spectra on {shape[0]}x{shape[1]} px; cube {cube.shape}")
    print(f"render one raw frame (simulator): {render_s:.2f} s")
    print(f"calibration (register, positions, wavelengths, IFU response): {calib_s:.2f} s")
    print(
        f"extract one frame -> cube: best {min(times):.2f} s, "
        f"median {np.median(times):.2f} s ({args.repeat} runs)"
    )


if __name__ == "__main__":
    main()
