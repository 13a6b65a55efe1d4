"""A local, Stripe-shaped fake for the billing flow (see ``app.py``)."""

from local.stripe_fake.app import StripeFake, decode_form, sign
from local.stripe_fake.server import StripeFakeServer, http_poster, in_process_client

__all__ = ["StripeFake", "StripeFakeServer", "decode_form", "http_poster", "in_process_client", "sign"]
