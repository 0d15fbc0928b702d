//! The multi-call binary is what the router runs as the agent, so it links like the agent: without
//! unwind tables and with identical code folded when lld links it for musl (`agent/build.rs` says why).

include!("../agent/build/unwind_tables.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    fold_identical_code();
    discard_unwind_tables()
}
