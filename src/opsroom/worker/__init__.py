"""The worker room: `opsroom worker`, which runs the jobs of one queue on its own host (SPEC §8)."""
