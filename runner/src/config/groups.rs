//! `[groups.NAME]`: tests that share something scarce run at most N at once.

use serde::Deserialize;

use super::values::Filter;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GroupTable {
    pub filter: Filter,
    pub max_workers: usize,
}
