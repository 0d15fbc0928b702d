//! The Attendant image-on-demand server, wire-compatible with OpenWrt's Attended SysUpgrade API.
