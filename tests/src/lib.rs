//! Whole-system journeys live in tests/journeys; this library is empty on purpose.
