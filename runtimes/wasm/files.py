"""Moved to `runtimes.files` (one file policy for every runtime); kept so old imports work."""
from runtimes.files import DEFAULT_ROOTS, EXTENSIONS, ModuleFileError, ModuleFiles, default_roots

__all__ = ["DEFAULT_ROOTS", "EXTENSIONS", "ModuleFileError", "ModuleFiles", "default_roots"]
