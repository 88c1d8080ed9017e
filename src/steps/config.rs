//! config step.
