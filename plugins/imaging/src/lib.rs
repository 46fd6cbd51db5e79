//! Medical image reading and CLEFT's image pipeline (skeleton; being written).
