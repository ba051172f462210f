//! [`PatternIndex`]: finds the softdep and weakdep lines whose module
//! pattern matches a name, literal patterns through a map.

use std::collections::HashMap;

use crate::glob::{fnmatch, is_literal};

/// Entries found by the module name their fnmatch(3) pattern matches:
/// literal patterns (all of depmod's) through a map, so a module's softdeps
/// are found without matching every line, the others one by one.
#[derive(Debug, Default)]
pub(super) struct PatternIndex {
    /// Entry indices by literal pattern.
    pub(super) literal: HashMap<String, Vec<usize>>,
    /// Indices of entries whose pattern has wildcards.
    pub(super) globs: Vec<usize>,
}

impl PatternIndex {
    /// Indexes the entries whose patterns are `patterns`, in order.
    pub(super) fn new<'a>(patterns: impl Iterator<Item = &'a str>) -> PatternIndex {
        let mut index = PatternIndex::default();
        for (i, pattern) in patterns.enumerate() {
            if !is_literal(pattern) {
                index.globs.push(i);
            } else {
                index
                    .literal
                    .entry(pattern.to_string())
                    .or_default()
                    .push(i);
            }
        }
        index
    }

    /// The indices of the entries matching `name`, in entry order;
    /// `pattern` gives an entry's pattern.
    pub(super) fn matching<'a>(
        &self,
        name: &str,
        pattern: impl Fn(usize) -> &'a str,
    ) -> Vec<usize> {
        let mut found: Vec<usize> = self.literal.get(name).cloned().unwrap_or_default();
        found.extend(
            self.globs
                .iter()
                .copied()
                .filter(|&i| fnmatch(pattern(i), name)),
        );
        found.sort_unstable();
        found
    }
}
