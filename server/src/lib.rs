//! The Attendant image-on-demand server, wire-compatible with OpenWrt's Attended SysUpgrade API.

#![warn(clippy::print_stdout)]

pub mod artifacts;
mod atomic;
pub mod build;
pub mod cli;
pub mod config;
pub mod gc;
pub mod http;
pub mod imagebuilder;
pub mod metadata;
pub mod process;
pub mod service;
pub mod signing;
pub mod state;
pub mod store;
pub mod view;
pub mod worker;
