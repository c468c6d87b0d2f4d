"""The chaos soak (issue 17, item 4): one long simulated stream through a group of workers while a
seeded schedule of faults strikes, then checks that nothing was lost and state stayed exact.

Read in this order: ``schedule`` (which faults, when), ``fleet`` (the workers and the broker the
faults strike), ``monitor`` (watching each partition's progress while it runs), ``soak`` (runs it
all), ``report`` (the table and its JSON). ``tests/integration/test_chaos_soak.py`` is the test;
``make chaos`` runs it and prints the table.
"""
