"""Pipeline presets shipped as YAML package data (registered in ``transfuse_text``)."""
