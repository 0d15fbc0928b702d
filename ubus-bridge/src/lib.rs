//! The rpcd exec plugin that exposes the Attendant agent as the ubus object `attendant`.
//!
//! It is a thin adapter over the agent's engine (`attendant`), built in a later step.
