//! Upgrade paths through a channel's builds, their scores, and the phased choice among them —
//! system-image's candidate resolution and `WeightedScorer` for OpenWrt's full images
//! (<https://gitlab.com/ubports/development/core/system-image>, `systemimage/candidates.py` and
//! `scores.py`). Pure: builds in, a [`Decision`] out.
//!
//! **Paths.** A build `E` newer than the running build `B` can be reached in one hop when its
//! `minversion` (default 0) is at most `B`; otherwise through stepping stones, each hop allowed
//! by the next build's `minversion`. system-image enumerated chains of deltas; OpenWrt has only
//! full images, where every chain to `E` flashes the same `E` in the end, so for each `E` one
//! path is kept: the one with fewest hops, then the smallest download, then the newest stepping
//! stones. That keeps the work quadratic in the builds (at most 4096 in an index) instead of
//! exponential in the chains.
//!
//! **Scores** (lowest wins, ties to the older end build, i.e. the first found):
//! `100 × hops + ⌊(download − smallest download) / 1 MiB⌋ + 9001 × (newest end − this end)`,
//! as system-image's code computes it (its docstring says 9000 per build).
//!
//! **Phasing.** Walking the paths by score, the first whose last build is phased in wins: its
//! `phased-percentage` (absent: 100) is above 0 and the router's phase for that build is at most
//! the percentage. Only the latest build can carry a percentage, so a phased-out router falls
//! back to the best path ending at an older build; a build at 0 % is pulled for everyone.

use serde::Serialize;

/// The percentage of a build without `phased-percentage`: everyone.
pub const FULL_ROLLOUT: u8 = 100;

/// Score per flash (system-image: per reboot).
pub const SCORE_PER_HOP: u64 = 100;

/// Score per build short of the newest.
pub const SCORE_PER_BUILD_BEHIND: u64 = 9001;

/// What a path needs to know of one build of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build {
    /// The build number.
    pub version: u64,
    /// The oldest build that may upgrade straight to this one (0: any).
    pub minversion: u64,
    /// The phased percentage (100 when the index has none).
    pub percentage: u8,
    /// Bytes the router downloads to flash it (0 when unknown: an on-demand build).
    pub download_bytes: u64,
}

/// One upgrade path and its score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScoredPath {
    /// The builds flashed in turn, the last one the destination.
    pub builds: Vec<u64>,
    /// Lower is better.
    pub score: u64,
    /// Bytes downloaded over the whole path.
    pub download_bytes: u64,
}

impl ScoredPath {
    /// The build the path ends at.
    pub fn end(&self) -> u64 {
        self.builds.last().copied().unwrap_or_default()
    }
}

/// The newest build on offer and this router's place in its rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// The newest build any path reaches.
    pub build: u64,
    /// Its phased percentage.
    pub percentage: u8,
    /// The router's phase for it (or the `--percentage` override).
    pub phase: u8,
    /// Whether the router may take it now.
    pub phased_in: bool,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Every path, best score first.
    pub paths: Vec<ScoredPath>,
    /// The index in `paths` of the path to take; `None`: nothing to do (up to date, or every
    /// newer build is phased out or pulled).
    pub winner: Option<usize>,
    /// The newest build's rollout; `None` when no build is newer than the running one.
    pub rollout: Option<Rollout>,
}

impl Decision {
    /// The path to take.
    pub fn winning_path(&self) -> Option<&ScoredPath> {
        self.winner.and_then(|index| self.paths.get(index))
    }
}

/// Every path from `current` through `builds` (ordered by increasing version), scored, and the
/// one to take given the router's phase for a build (`phase_of(build)`).
pub fn decide(builds: &[Build], current: u64, phase_of: impl Fn(u64) -> u8) -> Decision {
    let mut paths = candidate_paths(builds, current);
    score(&mut paths);
    let rollout = paths.iter().map(ScoredPath::end).max().and_then(|newest| {
        let build = builds.iter().find(|b| b.version == newest)?;
        let phase = phase_of(newest);
        Some(Rollout {
            build: newest,
            percentage: build.percentage,
            phase,
            phased_in: phased_in(build.percentage, phase),
        })
    });
    let winner = paths.iter().position(|path| {
        builds
            .iter()
            .find(|b| b.version == path.end())
            .is_some_and(|b| phased_in(b.percentage, phase_of(b.version)))
    });
    Decision {
        paths,
        winner,
        rollout,
    }
}

/// A build at `percentage` is for a router at `phase`.
pub fn phased_in(percentage: u8, phase: u8) -> bool {
    percentage > 0 && phase <= percentage
}

/// One path per build newer than `current`, in build order (unscored).
fn candidate_paths(builds: &[Build], current: u64) -> Vec<ScoredPath> {
    // best[i]: the best path to newer[i], as (hops, bytes, previous stone's index).
    let newer: Vec<&Build> = builds.iter().filter(|b| b.version > current).collect();
    let mut best: Vec<Option<(u64, u64, Option<usize>)>> = Vec::with_capacity(newer.len());
    for (index, build) in newer.iter().enumerate() {
        let mut choice = (build.minversion <= current).then_some((1, build.download_bytes, None));
        for (stone, reached) in best.iter().enumerate().take(index) {
            let (Some((hops, bytes, _)), Some(stone_build)) = (reached, newer.get(stone)) else {
                continue;
            };
            if stone_build.version < build.minversion {
                continue;
            }
            let through = (
                hops.saturating_add(1),
                bytes.saturating_add(build.download_bytes),
                Some(stone),
            );
            // Fewest hops, then fewest bytes; a later (newer) stone wins a tie.
            if choice.is_none_or(|(h, b, _)| (through.0, through.1) <= (h, b)) {
                choice = Some(through);
            }
        }
        best.push(choice);
    }
    let mut paths = Vec::new();
    for (index, reached) in best.iter().enumerate() {
        let Some((_, bytes, _)) = reached else {
            continue;
        };
        let mut builds = Vec::new();
        let mut at = Some(index);
        while let Some(step) = at {
            let Some(build) = newer.get(step) else { break };
            builds.push(build.version);
            at = best.get(step).copied().flatten().and_then(|(_, _, p)| p);
        }
        builds.reverse();
        paths.push(ScoredPath {
            builds,
            score: 0,
            download_bytes: *bytes,
        });
    }
    paths
}

/// `WeightedScorer`, then a stable sort by score.
fn score(paths: &mut [ScoredPath]) {
    let smallest = paths.iter().map(|p| p.download_bytes).min().unwrap_or(0);
    let newest = paths.iter().map(ScoredPath::end).max().unwrap_or(0);
    for path in paths.iter_mut() {
        let hops = u64::try_from(path.builds.len()).unwrap_or(u64::MAX);
        let extra_mib = (path.download_bytes - smallest.min(path.download_bytes)) >> 20;
        path.score = SCORE_PER_HOP
            .saturating_mul(hops)
            .saturating_add(extra_mib)
            .saturating_add(SCORE_PER_BUILD_BEHIND.saturating_mul(newest - newest.min(path.end())));
    }
    paths.sort_by_key(|p| p.score);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn build(version: u64, minversion: u64, percentage: u8, mib: u64) -> Build {
        Build {
            version,
            minversion,
            percentage,
            download_bytes: mib * MIB,
        }
    }

    fn summary(decision: &Decision) -> Vec<(Vec<u64>, u64)> {
        decision
            .paths
            .iter()
            .map(|p| (p.builds.clone(), p.score))
            .collect()
    }

    #[test]
    fn every_newer_build_is_a_path_the_newest_wins() {
        let builds = [
            build(5, 0, 100, 6),
            build(6, 0, 100, 6),
            build(7, 0, 100, 7),
        ];
        let decision = decide(&builds, 5, |_| 50);
        assert_eq!(summary(&decision), [(vec![7], 101), (vec![6], 100 + 9001)]);
        assert_eq!(decision.winning_path().unwrap().builds, [7]);
        assert_eq!(
            decision.rollout,
            Some(Rollout {
                build: 7,
                percentage: 100,
                phase: 50,
                phased_in: true
            })
        );
    }

    #[test]
    fn up_to_date_has_no_path_and_no_rollout() {
        let builds = [build(5, 0, 100, 6), build(6, 0, 100, 6)];
        let decision = decide(&builds, 6, |_| 0);
        assert!(decision.paths.is_empty());
        assert_eq!(decision.winner, None);
        assert_eq!(decision.rollout, None);
    }

    #[test]
    fn minversion_makes_a_stepping_stone() {
        // 7 needs at least 5; the router runs 3.
        let builds = [
            build(3, 0, 100, 5),
            build(5, 0, 100, 5),
            build(7, 5, 100, 5),
        ];
        let decision = decide(&builds, 3, |_| 0);
        // Two hops download 5 MiB more than the one to 5.
        assert_eq!(
            summary(&decision),
            [(vec![5, 7], 205), (vec![5], 100 + 2 * 9001)]
        );
    }

    #[test]
    fn the_fewest_hops_win_then_the_newest_stone() {
        // 9 needs 6 or newer; both 6 and 8 are reachable in one hop.
        let builds = [
            build(6, 0, 100, 5),
            build(8, 0, 100, 5),
            build(9, 6, 100, 5),
        ];
        let decision = decide(&builds, 1, |_| 0);
        assert_eq!(decision.paths[0].builds, [8, 9]);
        // A chain that needs two stones.
        let builds = [
            build(2, 0, 100, 1),
            build(4, 2, 100, 1),
            build(6, 4, 100, 1),
        ];
        let decision = decide(&builds, 0, |_| 0);
        assert_eq!(decision.paths[0].builds, [2, 4, 6]);
        assert_eq!(decision.paths[0].score, 300 + 2);
    }

    #[test]
    fn an_unreachable_build_has_no_path() {
        // 7 needs 6, which is not in the index; the newest reachable build is 5.
        let builds = [build(5, 0, 100, 5), build(7, 6, 100, 5)];
        let decision = decide(&builds, 4, |_| 0);
        assert_eq!(summary(&decision), [(vec![5], 100)]);
        assert_eq!(decision.rollout.unwrap().build, 5);
    }

    #[test]
    fn scores_follow_the_weighted_scorer_docstring() {
        // Two ends at the same build are impossible with one path per end, so check the sizes:
        // a bigger download costs 1 per MiB over the smallest, rounded down.
        let builds = [build(6, 0, 100, 10), build(7, 0, 100, 110)];
        let decision = decide(&builds, 5, |_| 0);
        assert_eq!(summary(&decision), [(vec![7], 200), (vec![6], 100 + 9001)]);
        // Half a MiB over rounds down to nothing.
        let builds = [
            Build {
                download_bytes: MIB / 2 * 3,
                ..build(6, 0, 100, 0)
            },
            build(7, 0, 100, 1),
        ];
        assert_eq!(decide(&builds, 5, |_| 0).paths[0].score, 100);
    }

    #[test]
    fn phased_out_falls_back_to_the_previous_build() {
        let builds = [build(6, 0, 100, 5), build(7, 0, 40, 5)];
        let decision = decide(&builds, 5, |_| 41);
        assert_eq!(decision.winning_path().unwrap().builds, [6]);
        let rollout = decision.rollout.unwrap();
        assert!(!rollout.phased_in);
        assert_eq!((rollout.phase, rollout.percentage), (41, 40));
        // At exactly the percentage the router is in.
        let decision = decide(&builds, 5, |_| 40);
        assert_eq!(decision.winning_path().unwrap().builds, [7]);
    }

    #[test]
    fn phased_out_with_no_older_path_means_no_upgrade() {
        let builds = [build(6, 0, 100, 5), build(7, 0, 40, 5)];
        let decision = decide(&builds, 6, |_| 90);
        assert_eq!(decision.paths.len(), 1);
        assert_eq!(decision.winner, None);
    }

    #[test]
    fn a_pulled_build_is_for_nobody() {
        let builds = [build(6, 0, 100, 5), build(7, 0, 0, 5)];
        let decision = decide(&builds, 5, |_| 0);
        assert_eq!(decision.winning_path().unwrap().builds, [6]);
        assert!(!decision.rollout.unwrap().phased_in);
    }

    #[test]
    fn the_phase_is_asked_for_the_build_each_path_ends_at() {
        let builds = [build(6, 0, 100, 5), build(7, 0, 50, 5)];
        let asked = std::cell::RefCell::new(Vec::new());
        decide(&builds, 5, |build| {
            asked.borrow_mut().push(build);
            if build == 7 { 10 } else { 99 }
        });
        assert!(asked.borrow().contains(&7));
    }
}
