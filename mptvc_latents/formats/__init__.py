"""Byte and on-disk formats, free of torch: the ``.mptvc`` container (``container``,
``docs/bitstream.md``) and the zarr token-store layout (``token_store``, ``docs/token_store.md``)."""
