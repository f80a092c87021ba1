"""sha256 of every FITS data array under a directory (headers excluded: they carry dates and versions).

Used to check that a refactoring leaves the demo's products bit-identical::

    hcdc demo --scale small --processes 0 /tmp/before   # on the old tree
    hcdc demo --scale small --processes 0 /tmp/after    # on the new tree
    python benchmarks/demo_data_hashes.py /tmp/before > before.txt
    python benchmarks/demo_data_hashes.py /tmp/after > after.txt
    diff before.txt after.txt                           # empty: the data are bit-identical

Each line is ``<relative path>[<HDU index>] <sha256 of the data bytes> <dtype> <shape>``; paths
are relative to the directory and sorted, with the version-dependent parts of product directory
names kept (they are chosen by the catalogue, not by the data).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from astropy.io import fits


def data_hashes(root: Path) -> list[str]:
    """One line per HDU with data of every ``*.fits`` file under ``root`` (sorted by path)."""
    lines = []
    for path in sorted(root.rglob("*.fits")):
        with fits.open(path, memmap=False) as hdus:
            for index, hdu in enumerate(hdus):
                if hdu.data is None:
                    continue
                data = hdu.data
                raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)
                digest = hashlib.sha256(raw).hexdigest()
                lines.append(f"{path.relative_to(root)}[{index}] {digest} {data.dtype} {data.shape}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/demo_data_hashes.py DIRECTORY")
    print("\n".join(data_hashes(Path(sys.argv[1]))))
