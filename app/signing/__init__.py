"""Signatures anyone can check offline: the release signing key (ES256, in the published JWKS,
rotated with `efdb keys rotate`), signed release statements and snapshot manifests, signed
audit checkpoints, the deeper audit check, and the offline verifier (`efdb verify`)."""
