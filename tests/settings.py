"""The site's settings for the test run: the same as production's, but with a fast password hasher (PBKDF2
costs about a second per account created or logged in, which many tests do; nothing here needs it
to be slow)."""

from evalsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
