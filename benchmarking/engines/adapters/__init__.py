"""One adapter per engine family (catalog.EngineInfo.family): what is installed, which version,
how one run starts (prepare) and, for AOT engines, how an artifact is compiled. families.py maps
each family to its adapter; nothing here imports launch.py, aot.py or conformance.py.
"""
