//! Transforms between the HTTP layer and the outputs (redaction, filters) and the sinks.
