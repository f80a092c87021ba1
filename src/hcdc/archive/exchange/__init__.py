"""Exchange formats of the Target Data Base: hierarchical JSON (:mod:`.tdb_json`, with its JSON
schema ``tdb.schema.json``) and HCI-FITS, the DIVA format (:mod:`.hcifits`)."""
