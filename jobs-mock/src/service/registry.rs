//! The thing registry: things and static thing groups, and which things each group holds.
//!
//! Only the registry's own bookkeeping lives here; what a membership change does to jobs
//! (CONTINUOUS targets) is in [`targets`](super::targets).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jobs_core::{ThingName, validate};
use serde::{Deserialize, Deserializer, Serialize};

use super::api::{ACCOUNT_ID, REGION};

/// The name of a thing group: 1–128 characters of `[a-zA-Z0-9:_-]` (botocore's
/// `ThingGroupName`, the thing-name pattern).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ThingGroupName(String);

impl ThingGroupName {
    /// A validated group name.
    ///
    /// # Errors
    /// What is wrong with `name`, as for a thing name.
    pub fn new(name: impl Into<String>) -> Result<Self, jobs_core::NameError> {
        let name = name.into();
        validate::thing_name(&name)?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ThingGroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ThingGroupName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::new(name).map_err(serde::de::Error::custom)
    }
}

/// The ARN of a thing group.
pub(crate) fn group_arn(group: &ThingGroupName) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_ID}:thinggroup/{group}")
}

/// Attributes of a thing or group (name → value).
pub(crate) type Attributes = BTreeMap<String, String>;

/// A registered thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThingRecord {
    pub(crate) id: String,
    pub(crate) attributes: Attributes,
    /// 1 at creation (no UpdateThing here, so it stays 1).
    pub(crate) version: i64,
}

/// A static thing group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRecord {
    pub(crate) id: String,
    pub(crate) description: Option<String>,
    pub(crate) attributes: Attributes,
    pub(crate) version: i64,
    /// Seconds since the epoch.
    pub(crate) created_at: i64,
    /// The member things, by name.
    pub(crate) members: BTreeSet<ThingName>,
}

/// Things and thing groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    pub(crate) things: BTreeMap<ThingName, ThingRecord>,
    pub(crate) groups: BTreeMap<ThingGroupName, GroupRecord>,
    /// The last ID given out (thing and group IDs share the sequence).
    last_id: u64,
}

impl Registry {
    /// A fresh ID in UUID form (`00000000-0000-4000-8000-000000000001`, …): deterministic,
    /// so tests can predict it (our choice; AWS's are random UUIDs).
    pub(crate) fn next_id(&mut self) -> String {
        self.last_id = self.last_id.saturating_add(1);
        format!("00000000-0000-4000-8000-{:012x}", self.last_id)
    }

    /// Registers `thing` with no attributes if it is not registered (the Rust shortcuts'
    /// implicit CreateThing).
    pub(crate) fn ensure_thing(&mut self, thing: &ThingName) {
        if !self.things.contains_key(thing) {
            let id = self.next_id();
            let record = ThingRecord {
                id,
                attributes: Attributes::new(),
                version: 1,
            };
            self.things.insert(thing.clone(), record);
        }
    }

    /// The groups `thing` is a member of, by name.
    pub(crate) fn groups_of(&self, thing: &ThingName) -> Vec<ThingGroupName> {
        self.groups
            .iter()
            .filter(|(_, group)| group.members.contains(thing))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The members of `group`, or `None` if no such group exists.
    pub(crate) fn members(&self, group: &ThingGroupName) -> Option<&BTreeSet<ThingName>> {
        self.groups.get(group).map(|g| &g.members)
    }

    /// Forgets every thing and group.
    pub(crate) fn clear(&mut self) {
        self.things.clear();
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_thing_name_pattern() {
        assert!(ThingGroupName::new("pumps:eu-1_a").is_ok());
        for bad in ["", "a b", "g/1", &"g".repeat(129)] {
            assert!(ThingGroupName::new(bad).is_err(), "{bad}");
        }
        let parsed: Result<ThingGroupName, _> = serde_json::from_str("\"bad name\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn ids_are_deterministic_uuid_shaped_and_never_repeat() {
        let mut registry = Registry::default();
        assert_eq!(registry.next_id(), "00000000-0000-4000-8000-000000000001");
        assert_eq!(registry.next_id(), "00000000-0000-4000-8000-000000000002");
    }
}
