"""What every app shares and none owns: the audit trail, the roles, the error types and the
API's plumbing (core.api), and the guards. It imports no other nomaflow app, so every app
may import it; step modules (leaves) use its plain-Python modules, never core.models."""
