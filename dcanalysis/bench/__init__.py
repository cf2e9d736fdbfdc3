"""The benchmark, beside the library: dcanalysis against the official algorithm, the model families' speed, and the
record of the speed experiments (``README.md`` here). Nothing in the library imports from here."""
