"""The "everything" KEMI module: every signature times every return type, echoed in C."""
