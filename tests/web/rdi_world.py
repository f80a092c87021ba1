"""Two RDI library rows in the access world (tests/web/world.py) for the RDI pages' tests: the
catalogue rows a build writes (``hcdc.archive.rdi_library.build_library``, whose known answer is
tested in tests/archive/test_rdi_library.py on real Level 1 products; the access world has only
Level 2 products), so the pages' rights (rule R18) are tested on the world's access states.

* ``owner-lib``: built by ``owner``, science = the public product, frames from the public and the
  private product: visible to the owner's programme (owner, co-I, delegate) and staff only;
* ``public-lib``: built by ``coi``, science and frames the public product: visible to everyone.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert

from hcdc.archive.rdi_models import RdiLibrary, RdiLibraryFrame


def add_rdi_libraries(world) -> dict[str, int]:
    public, private = world.ids["public"]["product"], world.ids["private"]["product"]
    out = {}
    with world.catalogue.engine.begin() as conn:
        for name, built_by, sources in (
            ("owner-lib", "owner", [public, private, private]),
            ("public-lib", "coi", [public, public]),
        ):
            library_id = conn.execute(
                insert(RdiLibrary)
                .values(
                    name=name,
                    science_product_id=public,
                    target="51 Eri",
                    instrument="SPHERE",
                    arm="IRDIS",
                    filter="DB_H23",
                    coronagraph="N_ALC_YJH_S",
                    dit_min_s=8.0,
                    dit_max_s=32.0,
                    annulus_inner_px=6.6,
                    annulus_outer_px=26.5,
                    n_candidates=10 * len(sources),
                    n_frames=len(sources),
                    path=f"rdi_libraries/{name}/library.fits",
                    sha256="ab" * 32,
                    built_by=built_by,
                    created_at=dt.datetime(2026, 5, 1),
                    record={"settings": {"max_frames": 200, "conditions_weight": 0.0}},
                )
                .returning(RdiLibrary.id)
            ).scalar_one()
            conn.execute(
                insert(RdiLibraryFrame),
                [
                    {
                        "library_id": library_id,
                        "rank": rank,
                        "product_id": pid,
                        "frame_index": rank,
                        "correlation": 0.9 - 0.1 * rank,
                        "strehl": 0.8,
                        "seeing_arcsec": 0.6,
                        "tau0_s": 5e-3,
                    }
                    for rank, pid in enumerate(sources)
                ],
            )
            out[name] = library_id
    return out
