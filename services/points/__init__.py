"""The points service: earns and takes back points from payment events, each applied once."""
