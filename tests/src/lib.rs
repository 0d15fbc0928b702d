//! End-to-end tests for Attendant and the fixtures they need.
