"""OCO-GAN (Optionally COnditioned GAN), built only from :mod:`ganblocks` blocks."""
