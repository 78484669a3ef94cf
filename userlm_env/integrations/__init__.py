"""Adapters that run userlm_env's episodes inside other RL frameworks.

Each adapter lives in its own module and imports its framework lazily, so importing
``userlm_env`` never needs them: :mod:`userlm_env.integrations.verl` (verl's agent loop, extra
``[verl]``) and :mod:`userlm_env.integrations.verifiers` (verifiers' v1 environments, extra
``[verifiers]``).
"""
