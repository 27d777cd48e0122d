"""Connect: workload identity (SPIFFE), the CA, and (later) intentions."""
