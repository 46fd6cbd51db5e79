//! Real medical data sets (skeleton; being written).
