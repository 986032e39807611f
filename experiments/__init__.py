"""The shipped experiments: scenario files (``<name>.toml``) and their driver scripts
(``<name>/<name>.py``), installed as the package data of ``fleet_sim.experiments``."""
