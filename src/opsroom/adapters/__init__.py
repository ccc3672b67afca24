"""Chat adapters: each platform's connection (transport) and pure translation, one contract."""
