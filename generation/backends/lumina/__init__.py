"""Lumina-Video natively: multi-scale Next-DiT, Gemma-2 text features, CogVideoX VAE (no Django)."""
