//! The job table: every job by name, in the job file's order.
//!
//! Reading goes straight to the map (`Deref`); every way to change an entry goes through
//! a method here, and each one drops the entry's cached `status` text first (see
//! [`status::Encoded`](super::status::Encoded)). So the cache cannot go stale whatever
//! field a later change touches: there is no `&mut Entry` that did not clear it. (It is
//! cleared more often than needed — for a change of `run` or a timer's ticket too — which
//! only costs one encoding at the next `status`.)

use super::Entry;
use indexmap::IndexMap;
use std::ops::Deref;

/// Every job by name, in the job file's order.
#[derive(Default)]
pub(super) struct Table(IndexMap<String, Entry>);

impl Deref for Table {
    type Target = IndexMap<String, Entry>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromIterator<(String, Entry)> for Table {
    fn from_iter<I: IntoIterator<Item = (String, Entry)>>(iter: I) -> Self {
        Table(iter.into_iter().collect())
    }
}

/// An entry about to be changed: its status text no longer holds.
fn changing(e: &mut Entry) -> &mut Entry {
    e.encoded.clear();
    e
}

impl Table {
    /// The entry named `name`, to change.
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.0.get_mut(name).map(changing)
    }

    /// Add a job at the end (replacing one of the same name).
    pub(super) fn insert(&mut self, name: String, entry: Entry) -> Option<Entry> {
        self.0.insert(name, entry)
    }

    /// Add a job at position `at` (replacing one of the same name).
    pub(super) fn shift_insert(&mut self, at: usize, name: String, entry: Entry) -> Option<Entry> {
        self.0.shift_insert(at, name, entry)
    }

    /// Put the jobs in the order of `key` (their texts hold: a job's text is its own).
    pub(super) fn sort_by_cached_key<K: Ord>(&mut self, key: impl FnMut(&String, &Entry) -> K) {
        self.0.sort_by_cached_key(key);
    }

    /// Forget a job, keeping the others' order.
    pub(super) fn shift_remove(&mut self, name: &str) -> Option<Entry> {
        self.0.shift_remove(name)
    }
}
