"""The optional C accelerator of the ring (ipc/_ringc.c); the rest of the metadata is in pyproject.toml.

`optional=True`: without a compiler the install goes on and ipc/ring.py runs its Python code.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("ipc._ringc", ["ipc/_ringc.c"], optional=True, extra_compile_args=["-O2", "-Wall"])])
