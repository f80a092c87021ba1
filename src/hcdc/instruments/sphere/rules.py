"""Association-rule pieces shared by the SPHERE arms (sphere.md section b)."""

from __future__ import annotations

#: sources of the background rule of IRDIS and IFS
SPHERE_BACKGROUND_SOURCE = (
    "vlt-sphere sph_ird/ifs_preprocess_science (SKY > DARK,BACKGROUND > DARK, same DIT); "
    "spherical irdis/ifs_observation (SKY also matches filter and ND; warning > 1 day)"
)
