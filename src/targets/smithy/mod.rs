//! `kind = "smithy"` (in progress).
