//! Dependency resolution of the fixture ImageBuilder, with opkg's and apk's own output.
//!
//! [`resolve`] installs the requested names in order (what `opkg install $(BUILD_PACKAGES)` or
//! `apk add $(BUILD_PACKAGES)` does inside the real `make package_install`): a name is found
//! as a package or through `Provides`, its `Depends` are installed first, declared
//! `Conflicts` and clashing files (dnsmasq vs dnsmasq-full) fail. The texts are the ones ASU
//! parses after a failed `make manifest` (<https://github.com/openwrt/asu/blob/main/asu/build.py>):
//!
//! - opkg (24.10): stdout `Unknown package 'X'.`; stderr `Collected errors:` followed by
//!   ` * opkg_install_cmd: Cannot install package X.`, ` * check_conflicts_for: The following
//!   packages conflict with X:` / ` * check_conflicts_for: \tY * `, or
//!   ` * check_data_file_clashes: Package X wants to install file F` /
//!   `\tBut that file is already provided by package  * Y`; exit status 255.
//! - apk (25.12): stderr `ERROR: unable to select packages:` followed by `  X (no such package):`
//!   / `    required by: world[X]`, or per conflicting package `  X-1.0-r1:` /
//!   `    conflicts: Y-1.0-r1[name]` / `    satisfies: world[X]`; exit status 1.
//!
//! apk reports every problem at once after solving; opkg goes on after a failed name and
//! collects its errors, as the real tools do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use attendant_proto::index::{PackageEntry, Relation};

use crate::catalog::PackageManager;

/// The package lists an ImageBuilder resolves against.
#[derive(Debug, Clone, Default)]
pub struct Index {
    packages: BTreeMap<String, PackageEntry>,
    provides: BTreeMap<String, Vec<String>>,
    files: BTreeMap<String, Vec<String>>,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Name as published (`libubox20240329`).
    pub package: String,
    /// Name without ABI suffix (`libubox`).
    pub name: String,
    /// Version.
    pub version: String,
    /// `Installed-Size`, bytes.
    pub installed_size: u64,
}

/// What a run of the package manager printed and installed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Installed packages, in installation order.
    pub installed: Vec<Installed>,
    /// What the package manager printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// Its exit status (`0` on success).
    pub exit_code: i32,
}

impl Index {
    /// An index of `entries`; `files` names the files of packages that clash with variants.
    pub fn new(entries: Vec<PackageEntry>, files: BTreeMap<String, Vec<String>>) -> Self {
        let mut index = Self {
            files,
            ..Self::default()
        };
        for entry in entries {
            for provided in &entry.provides {
                index
                    .provides
                    .entry(provided.name.clone())
                    .or_default()
                    .push(entry.package.clone());
            }
            index.packages.insert(entry.package.clone(), entry);
        }
        index
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The package that satisfies `name`: the package itself, else its first provider.
    fn find(&self, name: &str, chosen: &BTreeMap<String, usize>) -> Option<&PackageEntry> {
        if let Some(entry) = self.packages.get(name) {
            return Some(entry);
        }
        let providers = self.provides.get(name)?;
        let preferred = providers
            .iter()
            .find(|p| chosen.contains_key(*p))
            .or(providers.first())?;
        self.packages.get(preferred)
    }
}

/// Installs `requested` (names in `BUILD_PACKAGES` order) with `manager`'s behaviour.
pub fn resolve(index: &Index, requested: &[String], manager: PackageManager) -> Report {
    match manager {
        PackageManager::Opkg => resolve_opkg(index, requested),
        PackageManager::Apk => resolve_apk(index, requested),
    }
}

/// A selection in progress: chosen package → position, and who owns which file.
#[derive(Default, Clone)]
struct Selection {
    chosen: BTreeMap<String, usize>,
    order: Vec<String>,
    file_owners: BTreeMap<String, String>,
}

/// Why one package could not be added.
enum Problem {
    Missing {
        name: String,
        required_by: Option<String>,
    },
    Conflict {
        package: String,
        with: String,
        shared: String,
        declared: bool,
    },
}

impl Selection {
    fn satisfied(&self, index: &Index, name: &str) -> bool {
        self.chosen.contains_key(name)
            || index
                .provides
                .get(name)
                .is_some_and(|providers| providers.iter().any(|p| self.chosen.contains_key(p)))
    }

    /// Adds `entry` and its dependencies, depth first; stops at the first problem.
    fn add(
        &mut self,
        index: &Index,
        entry: &PackageEntry,
        trail: &mut Vec<String>,
    ) -> Result<(), Problem> {
        if self.chosen.contains_key(&entry.package) || trail.contains(&entry.package) {
            return Ok(());
        }
        for conflict in &entry.conflicts {
            if let Some(with) = self.owner_of_name(index, &conflict.name) {
                return Err(Problem::Conflict {
                    package: entry.package.clone(),
                    with,
                    shared: conflict.name.clone(),
                    declared: true,
                });
            }
        }
        for file in index.files.get(&entry.package).into_iter().flatten() {
            if let Some(owner) = self.file_owners.get(file) {
                return Err(Problem::Conflict {
                    package: entry.package.clone(),
                    with: owner.clone(),
                    shared: file.clone(),
                    declared: false,
                });
            }
        }
        trail.push(entry.package.clone());
        for alternatives in &entry.depends {
            if alternatives.iter().any(|r| self.satisfied(index, &r.name)) {
                continue;
            }
            let Some(dep) = alternatives
                .iter()
                .find_map(|r| index.find(&r.name, &self.chosen))
            else {
                return Err(Problem::Missing {
                    name: relation_names(alternatives),
                    required_by: Some(entry.package.clone()),
                });
            };
            self.add(index, dep, trail)?;
        }
        trail.pop();
        for file in index.files.get(&entry.package).into_iter().flatten() {
            self.file_owners.insert(file.clone(), entry.package.clone());
        }
        self.chosen.insert(entry.package.clone(), self.order.len());
        self.order.push(entry.package.clone());
        Ok(())
    }

    fn owner_of_name(&self, index: &Index, name: &str) -> Option<String> {
        if self.chosen.contains_key(name) {
            return Some(name.to_owned());
        }
        index
            .provides
            .get(name)?
            .iter()
            .find(|p| self.chosen.contains_key(*p))
            .cloned()
    }

    fn installed(&self, index: &Index) -> Vec<Installed> {
        self.order
            .iter()
            .filter_map(|package| index.packages.get(package))
            .map(|entry| Installed {
                package: entry.package.clone(),
                name: entry.name.clone(),
                version: entry.version.clone(),
                installed_size: entry.installed_size.unwrap_or(0),
            })
            .collect()
    }
}

fn relation_names(relations: &[Relation]) -> String {
    relations
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn resolve_opkg(index: &Index, requested: &[String]) -> Report {
    let mut selection = Selection::default();
    let mut stdout = String::new();
    let mut errors: Vec<String> = Vec::new();
    for name in requested {
        let Some(entry) = index.find(name, &selection.chosen) else {
            let _ = writeln!(stdout, "Unknown package '{name}'.");
            errors.push(format!(
                "opkg_install_cmd: Cannot install package {name}.\n"
            ));
            continue;
        };
        if selection.chosen.contains_key(&entry.package) {
            let _ = writeln!(
                stdout,
                "Package {} ({}) installed in root is up to date.",
                entry.package, entry.version
            );
            continue;
        }
        let mut attempt = selection.clone();
        match attempt.add(index, entry, &mut Vec::new()) {
            Ok(()) => {
                for package in attempt.order.iter().skip(selection.order.len()) {
                    if let Some(added) = index.packages.get(package) {
                        let _ = writeln!(
                            stdout,
                            "Installing {} ({}) to root...",
                            added.package, added.version
                        );
                    }
                }
                selection = attempt;
            }
            Err(problem) => {
                errors.extend(opkg_problem(&problem));
                errors.push(format!(
                    "opkg_install_cmd: Cannot install package {name}.\n"
                ));
            }
        }
    }
    for package in &selection.order {
        let _ = writeln!(stdout, "Configuring {package}.");
    }
    let mut stderr = String::new();
    let exit_code = if errors.is_empty() {
        0
    } else {
        // opkg prints each collected error as " * <entry>"; an entry without a newline runs on
        // into the next " * ", which is why conflict lines end in " * ".
        stderr.push_str("Collected errors:\n");
        for error in &errors {
            stderr.push_str(" * ");
            stderr.push_str(error);
        }
        255
    };
    Report {
        installed: selection.installed(index),
        stdout,
        stderr,
        exit_code,
    }
}

fn opkg_problem(problem: &Problem) -> Vec<String> {
    match problem {
        Problem::Missing { name, required_by } => vec![
            format!(
                "satisfy_dependencies_for: Cannot satisfy the following dependencies for {}:\n",
                required_by.as_deref().unwrap_or("")
            ),
            format!("\t{name}\n"),
        ],
        Problem::Conflict {
            package,
            with,
            declared: true,
            ..
        } => vec![
            format!("check_conflicts_for: The following packages conflict with {package}:\n"),
            format!("check_conflicts_for: \t{with}"),
            "\n".to_owned(),
        ],
        Problem::Conflict {
            package,
            with,
            shared,
            declared: false,
        } => vec![
            format!(
                "check_data_file_clashes: Package {package} wants to install file {}\n\tBut that file is already provided by package ",
                root_path(shared)
            ),
            format!("{with}\n"),
        ],
    }
}

/// Where a file lands in the ImageBuilder's staging root (what opkg prints).
fn root_path(file: &str) -> String {
    format!("/builder/build_dir/target/root{file}")
}

fn resolve_apk(index: &Index, requested: &[String]) -> Report {
    let mut selection = Selection::default();
    let mut problems = Vec::new();
    // apk puts every requested name in the world file (sorted, without duplicates) and solves
    // the world as a whole.
    let world: BTreeSet<&String> = requested.iter().collect();
    for name in &world {
        let Some(entry) = index.find(name, &selection.chosen) else {
            problems.push(Problem::Missing {
                name: (*name).clone(),
                required_by: None,
            });
            continue;
        };
        let mut attempt = selection.clone();
        match attempt.add(index, entry, &mut Vec::new()) {
            Ok(()) => selection = attempt,
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        let mut stdout = String::new();
        let total = selection.order.len();
        for (position, package) in selection.order.iter().enumerate() {
            if let Some(entry) = index.packages.get(package) {
                let _ = writeln!(
                    stdout,
                    "({}/{total}) Installing {} ({})",
                    position.saturating_add(1),
                    entry.package,
                    entry.version
                );
            }
        }
        let installed = selection.installed(index);
        let bytes: u64 = installed.iter().map(|p| p.installed_size).sum();
        let _ = writeln!(
            stdout,
            "OK: {} MiB in {total} packages",
            bytes / (1024 * 1024)
        );
        return Report {
            installed,
            stdout,
            stderr: String::new(),
            exit_code: 0,
        };
    }
    let mut stderr = String::from("ERROR: unable to select packages:\n");
    for problem in &problems {
        stderr.push_str(&apk_problem(index, problem, &world));
    }
    Report {
        installed: Vec::new(),
        stdout: String::new(),
        stderr,
        exit_code: 1,
    }
}

fn apk_problem(index: &Index, problem: &Problem, world: &BTreeSet<&String>) -> String {
    let label = |package: &str| {
        index.packages.get(package).map_or_else(
            || package.to_owned(),
            |e| format!("{}-{}", e.package, e.version),
        )
    };
    let satisfies = |package: &str| {
        let name = index
            .packages
            .get(package)
            .map_or(package, |e| e.name.as_str());
        if world
            .iter()
            .any(|w| w.as_str() == package || w.as_str() == name)
        {
            format!(
                "world[{}]",
                if world.iter().any(|w| w.as_str() == package) {
                    package
                } else {
                    name
                }
            )
        } else {
            format!("world[{name}]")
        }
    };
    match problem {
        Problem::Missing { name, required_by } => {
            let by = required_by.as_deref().map_or_else(
                || format!("world[{name}]"),
                |p| format!("{}[{name}]", label(p)),
            );
            format!("  {name} (no such package):\n    required by: {by}\n")
        }
        Problem::Conflict {
            package,
            with,
            shared: _,
            declared,
        } => {
            let shared = if *declared {
                package.clone()
            } else {
                shared_name(index, package, with)
            };
            format!(
                "  {}:\n    conflicts: {}[{shared}]\n    satisfies: {}\n  {}:\n    conflicts: {}[{shared}]\n    satisfies: {}\n",
                label(package),
                label(with),
                satisfies(package),
                label(with),
                label(package),
                satisfies(with),
            )
        }
    }
}

/// The name two clashing variants both stand for (`dnsmasq` for dnsmasq/dnsmasq-full).
fn shared_name(index: &Index, package: &str, with: &str) -> String {
    let provides = |p: &str| -> Vec<String> {
        index
            .packages
            .get(p)
            .map(|e| {
                let mut names = vec![e.name.clone()];
                names.extend(e.provides.iter().map(|r| r.name.clone()));
                names
            })
            .unwrap_or_default()
    };
    let theirs = provides(with);
    provides(package)
        .into_iter()
        .find(|name| theirs.contains(name))
        .unwrap_or_else(|| with.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        package: &str,
        depends: &[&str],
        provides: &[&str],
        conflicts: &[&str],
        size: u64,
    ) -> PackageEntry {
        let relation = |name: &&str| Relation {
            name: (*name).to_owned(),
            constraint: None,
        };
        PackageEntry {
            name: package.trim_end_matches(char::is_numeric).to_owned(),
            package: package.to_owned(),
            version: "1.0-r1".to_owned(),
            depends: depends.iter().map(|d| vec![relation(d)]).collect(),
            provides: provides.iter().map(relation).collect(),
            conflicts: conflicts.iter().map(relation).collect(),
            installed_size: Some(size),
            ..PackageEntry::default()
        }
    }

    fn index() -> Index {
        let mut files = BTreeMap::new();
        files.insert("dnsmasq".to_owned(), vec!["/usr/sbin/dnsmasq".to_owned()]);
        files.insert(
            "dnsmasq-full".to_owned(),
            vec!["/usr/sbin/dnsmasq".to_owned()],
        );
        Index::new(
            vec![
                entry("libc", &[], &[], &[], 100),
                entry("libubox20240329", &["libc"], &["libubox"], &[], 10),
                entry("uci", &["libc", "libubox20240329"], &[], &[], 5),
                entry("dnsmasq", &["libc"], &[], &[], 5),
                entry("dnsmasq-full", &["libc"], &["dnsmasq"], &[], 5),
                entry("wpad-basic", &["libc"], &["wpad"], &["wpad-openssl"], 5),
                entry("wpad-openssl", &["libc"], &["wpad"], &["wpad-basic"], 5),
                entry("broken", &["nothere"], &[], &[], 5),
            ],
            files,
        )
    }

    fn names(report: &Report) -> Vec<&str> {
        report
            .installed
            .iter()
            .map(|p| p.package.as_str())
            .collect()
    }

    #[test]
    fn installs_dependencies_first_and_through_provides() {
        let report = resolve(
            &index(),
            &["uci".to_owned(), "libubox".to_owned()],
            PackageManager::Opkg,
        );
        assert_eq!(report.exit_code, 0, "{}", report.stderr);
        assert_eq!(names(&report), ["libc", "libubox20240329", "uci"]);
        assert!(report.stdout.contains("Installing uci (1.0-r1) to root..."));
    }

    #[test]
    fn opkg_reports_a_missing_package_like_opkg() {
        let report = resolve(
            &index(),
            &["uci".to_owned(), "foo".to_owned()],
            PackageManager::Opkg,
        );
        assert_eq!(report.exit_code, 255);
        assert!(report.stdout.contains("Unknown package 'foo'.\n"));
        assert_eq!(
            report.stderr,
            "Collected errors:\n * opkg_install_cmd: Cannot install package foo.\n"
        );
    }

    #[test]
    fn opkg_reports_declared_conflicts_with_check_conflicts_for() {
        let report = resolve(
            &index(),
            &["wpad-openssl".to_owned(), "wpad-basic".to_owned()],
            PackageManager::Opkg,
        );
        assert_eq!(report.exit_code, 255);
        assert_eq!(
            report.stderr,
            "Collected errors:\n * check_conflicts_for: The following packages conflict with wpad-basic:\n * check_conflicts_for: \twpad-openssl * \n * opkg_install_cmd: Cannot install package wpad-basic.\n"
        );
    }

    #[test]
    fn opkg_reports_file_clashes() {
        let report = resolve(
            &index(),
            &["dnsmasq-full".to_owned(), "dnsmasq".to_owned()],
            PackageManager::Opkg,
        );
        assert_eq!(report.exit_code, 255);
        assert!(report.stderr.contains(
            "check_data_file_clashes: Package dnsmasq wants to install file /builder/build_dir/target/root/usr/sbin/dnsmasq\n\tBut that file is already provided by package  * dnsmasq-full\n"
        ));
    }

    #[test]
    fn opkg_reports_missing_dependencies() {
        let report = resolve(&index(), &["broken".to_owned()], PackageManager::Opkg);
        assert!(
            report
                .stderr
                .contains("Cannot satisfy the following dependencies for broken:\n * \tnothere\n")
        );
        assert!(report.stderr.contains("Cannot install package broken."));
    }

    #[test]
    fn apk_reports_missing_packages_like_apk() {
        let report = resolve(
            &index(),
            &["uci".to_owned(), "foo".to_owned()],
            PackageManager::Apk,
        );
        assert_eq!(report.exit_code, 1);
        assert_eq!(
            report.stderr,
            "ERROR: unable to select packages:\n  foo (no such package):\n    required by: world[foo]\n"
        );
        assert!(report.installed.is_empty());
    }

    #[test]
    fn apk_reports_conflicts_as_conflict_blocks() {
        let report = resolve(
            &index(),
            &["dnsmasq".to_owned(), "dnsmasq-full".to_owned()],
            PackageManager::Apk,
        );
        assert_eq!(report.exit_code, 1);
        assert_eq!(
            report.stderr,
            "ERROR: unable to select packages:\n  dnsmasq-full-1.0-r1:\n    conflicts: dnsmasq-1.0-r1[dnsmasq]\n    satisfies: world[dnsmasq-full]\n  dnsmasq-1.0-r1:\n    conflicts: dnsmasq-full-1.0-r1[dnsmasq]\n    satisfies: world[dnsmasq]\n"
        );
    }

    #[test]
    fn apk_success_lists_installs_and_total() {
        let report = resolve(&index(), &["uci".to_owned()], PackageManager::Apk);
        assert_eq!(report.exit_code, 0);
        assert!(
            report
                .stdout
                .starts_with("(1/3) Installing libc (1.0-r1)\n")
        );
        assert!(report.stdout.ends_with("OK: 0 MiB in 3 packages\n"));
    }
}
