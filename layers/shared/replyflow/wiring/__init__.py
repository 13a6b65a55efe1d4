"""Composition roots. ``core`` builds what every function family shares; one module per family
(``pipeline``, ``api``, ``jobs``) builds that family's services from it."""
