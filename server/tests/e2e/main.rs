//! End-to-end tests of `attendant-server` over real HTTP on loopback, against the fixture
//! OpenWrt mirror and ImageBuilders of `attendant-e2e` (issue 4 "Must show").

#[cfg(test)]
mod api;
#[cfg(test)]
mod bodies;
#[cfg(test)]
mod builds;
#[cfg(test)]
mod caching;
#[cfg(test)]
mod cors;
#[cfg(test)]
mod faults;
#[cfg(test)]
mod fixture;
#[cfg(test)]
mod hits_without_database;
#[cfg(test)]
mod netns_workers;
#[cfg(test)]
mod openapi;
#[cfg(test)]
mod pages;
#[cfg(test)]
mod postgres;
#[cfg(test)]
mod remote_workers;
#[cfg(test)]
mod repositories;
#[cfg(test)]
mod shared_queue;
#[cfg(test)]
mod small_disk;
#[cfg(test)]
mod stats;
#[cfg(test)]
mod support;
