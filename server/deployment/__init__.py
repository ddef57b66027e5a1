"""The coordinator's deployment: federation.toml, the SuperLink process, run submission."""
