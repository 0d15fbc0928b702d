//! Leaves the unwind tables out of the static router binary when the linker allows it.
//!
//! The router profiles (`release`, `openwrt`) build with `panic = "abort"`, and nothing in the
//! agent catches a panic, so nothing ever unwinds: `.eh_frame` only feeds the backtrace a panic
//! prints under `RUST_BACKTRACE=1`. Yet it is about 260 KB of the 2 MB static aarch64 binary,
//! nearly all of it from the precompiled standard library, which stable Rust cannot rebuild
//! without it. A panic still prints its message and location and aborts; its backtrace is
//! empty. (`docs/benchmarks.md`, "Agent size and memory", has the measurements.)
//!
//! The condition cannot be the panic strategy: Cargo tells build scripts `CARGO_CFG_PANIC` from
//! the target's defaults (`unwind`), not from the profile. A build with `panic = "unwind"` loses
//! nothing but destructors on the way to the same abort, and `rustc-link-arg-bins` never
//! reaches test harnesses, which do catch panics.
//!
//! Only lld on musl gets the script. GNU ld honours `INSERT` only with `-T`, and then refuses static
//! links because gcc's `crtbeginT.o` points into `.eh_frame`; OpenWrt's own toolchain (gcc and
//! GNU ld, linking dynamically against the system musl) therefore builds with the tables.
//!
//! The same links also get identical code folding (`--icf=all`): lld keeps one copy of the
//! functions whose machine code came out byte-identical (generic code instantiated for different
//! types often does): 8 KB raw, 2 KB after xz on aarch64 (docs/benchmarks.md). `all` rather
//! than `safe`: rustc does not mark which functions have their address taken, so lld's `safe`
//! mode folds nothing in Rust code. What folding can break is code that tells two functions
//! apart by address; Rust promises no distinct addresses (`std::ptr::fn_addr_eq`), and the
//! folded aarch64 binary is what `scripts/agent-cross-check.sh` runs against the real server.
//!
//! `build/unwind_tables.rs` holds the logic; `ubus-bridge/build.rs` includes it too, so the
//! multi-call binary the router runs gets the same treatment.

include!("build/unwind_tables.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    fold_identical_code();
    discard_unwind_tables()
}
