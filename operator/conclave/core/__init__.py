"""The pure core: plain data in, plain data out. No I/O, no kopf, no clients, no clocks.

Time comes in as a value inside the observation; nothing here reads a clock or a random
source, so every decision can be replayed and property-tested.
"""
