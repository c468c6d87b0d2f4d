"""Local deployment: the broker tooling, the demo (``python -m deploy.demo``) and its stack."""
