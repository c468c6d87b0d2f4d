"""The Faust worker shell: the app and its agent, the readers, the publisher, the model swap.

Only this package builds and runs the Faust app. It drives the library (``stream_app``'s other
modules: settings, schemas, features, state, the batch scorer); the library never imports it,
and neither do the other services (producers, training, drift).
``tests/unit/test_import_rules.py`` keeps it so.
"""
