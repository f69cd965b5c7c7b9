"""The experiments, one strategy per benchmarking runtime type (strategy.Experiment):

- repeat.py: `benchmarking`: `repeat` runs (or one per argv list) per engine;
- seeded.py: `benchmarking/seeded`: the same loop with a random seed per run;
- interference.py: `benchmarking/interference`: N modules at once, each on its own CPU, over and over;
- opcodes.py: `benchmarking/opcodes`: exact opcode counts from an instrumented module.
"""
