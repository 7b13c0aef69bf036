"""tines.runtime: the engine. Kept import-light: submodules load torch, this file does not."""
