//! Shards: `--shard I/N` trains the runs whose name hashes to shard `I` of `N` (1-based, as
//! Slurm array indices `1-N`). The assignment depends only on the run's name — its base and grid
//! values — so it is the same whatever the order of the grid, the bases or the shards' start.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// One shard of a sweep: `index` of `count`, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, `1..=count`.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// The whole sweep as one shard.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// The shard (`1..=count`) a run named `name` belongs to.
    pub fn of(name: &str, count: usize) -> usize {
        let digest = Sha256::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % count.max(1) as u64) as usize + 1
    }

    /// Whether the run named `name` belongs to this shard.
    pub fn holds(&self, name: &str) -> bool {
        Shard::of(name, self.count) == self.index
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// Parses `I/N` with `1 <= I <= N`.
    fn from_str(s: &str) -> Result<Self> {
        let Some((i, n)) = s.split_once('/') else { bail!("--shard `{s}`: expected I/N, e.g. 1/4") };
        let index: usize =
            i.trim().parse().with_context(|| format!("--shard `{s}`: `{i}` is not a number"))?;
        let count: usize =
            n.trim().parse().with_context(|| format!("--shard `{s}`: `{n}` is not a number"))?;
        if count == 0 || index == 0 || index > count {
            bail!("--shard `{s}`: need 1 <= I <= N (shards are numbered from 1, as Slurm's --array=1-N)")
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}
