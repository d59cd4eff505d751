"""TLS key and trust stores as Gravitee endpoint settings describe them (PEM, PKCS12, JKS)."""
