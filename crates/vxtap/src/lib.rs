//! The vxtap appliance: CLI commands, pipeline wiring, threads and metrics.
