"""VLT/SPHERE: the instrument plugin (:mod:`~hcdc.instruments.sphere.metadata`), constants shared by
its arms (:mod:`~hcdc.instruments.sphere.constants`), and one package per arm (``irdis``, ``ifs``)."""
