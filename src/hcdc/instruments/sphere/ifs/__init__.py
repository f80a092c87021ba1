"""SPHERE/IFS: metadata (modes, lamps, association rules); the place for an IFS reduction."""
