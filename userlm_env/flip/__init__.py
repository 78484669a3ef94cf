"""Flip the dialogue: train and evaluate your own User LM on real conversations.

- :mod:`userlm_env.flip.data`: conversation loaders (OpenAI, ShareGPT, WildChat) and filters.
- :mod:`userlm_env.flip.intents`: one high-level intent per conversation (LM-written or cheap).
- :mod:`userlm_env.flip.flipping`: tokenised training examples whose targets are the user turns.
"""
