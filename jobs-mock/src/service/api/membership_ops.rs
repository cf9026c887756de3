//! The membership operations of static thing groups: AddThingToThingGroup,
//! RemoveThingFromThingGroup, ListThingsInThingGroup, ListThingGroupsForThing. Membership
//! changes apply to CONTINUOUS jobs that target the group (see
//! [`TargetSelection`](crate::service::TargetSelection)).

use jobs_core::ThingName;
use serde::{Deserialize, Serialize};

use super::super::jobs_service::{JobsService, Outgoing};
use super::super::registry::ThingGroupName;
use super::super::targets::{Target, parse_target};
use super::group_ops::{GroupNameAndArn, ListThingGroupsOutput, no_group};
use super::shapes::Empty;
use super::thing_ops::no_thing;
use super::{ApiError, ControlOperation, Operation, page, sealed};

/// The thing and group named by name or ARN (one of the two for each; if both are given they
/// must agree: our choice), both registered.
fn membership(
    service: &JobsService,
    thing_name: Option<ThingName>,
    thing_arn: Option<&str>,
    group_name: Option<ThingGroupName>,
    group_arn: Option<&str>,
) -> Result<(ThingName, ThingGroupName), ApiError> {
    let thing_from_arn = thing_arn
        .map(|arn| match parse_target(arn)? {
            Target::Thing(thing) => Ok(thing),
            Target::Group(_) => Err(ApiError::invalid(format!("{arn} is not a thing ARN"))),
        })
        .transpose()?;
    let group_from_arn = group_arn
        .map(|arn| match parse_target(arn)? {
            Target::Group(group) => Ok(group),
            Target::Thing(_) => Err(ApiError::invalid(format!("{arn} is not a thing-group ARN"))),
        })
        .transpose()?;
    let thing = one_of(thing_name, thing_from_arn, "thingName", "thingArn")?;
    let group = one_of(
        group_name,
        group_from_arn,
        "thingGroupName",
        "thingGroupArn",
    )?;
    if !service.registry.things.contains_key(&thing) {
        return Err(no_thing(&thing));
    }
    if !service.registry.groups.contains_key(&group) {
        return Err(no_group(&group));
    }
    Ok((thing, group))
}

fn one_of<T: PartialEq>(
    name: Option<T>,
    from_arn: Option<T>,
    name_member: &str,
    arn_member: &str,
) -> Result<T, ApiError> {
    match (name, from_arn) {
        (Some(a), Some(b)) if a != b => Err(ApiError::invalid(format!(
            "{name_member} and {arn_member} name different resources"
        ))),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(ApiError::invalid(format!(
            "{name_member} or {arn_member} is required"
        ))),
    }
}

/// AddThingToThingGroup: makes a registered thing a member of a group (adding a member again
/// changes nothing). A CONTINUOUS job targeting the group gives the thing an execution
/// (execution number + 1 if it ran the job before) unless one is pending.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AddThingToThingGroup {
    /// The group, by name…
    #[serde(default)]
    pub thing_group_name: Option<ThingGroupName>,
    /// … or by ARN.
    #[serde(default)]
    pub thing_group_arn: Option<String>,
    /// The thing, by name…
    #[serde(default)]
    pub thing_name: Option<ThingName>,
    /// … or by ARN.
    #[serde(default)]
    pub thing_arn: Option<String>,
    /// Accepted and ignored (dynamic groups are not emulated).
    #[serde(default)]
    pub override_dynamic_groups: Option<bool>,
}

impl AddThingToThingGroup {
    /// A request adding `thing` to `group`.
    pub fn new(thing: ThingName, group: ThingGroupName) -> Self {
        Self {
            thing_group_name: Some(group),
            thing_group_arn: None,
            thing_name: Some(thing),
            thing_arn: None,
            override_dynamic_groups: None,
        }
    }
}

impl sealed::Sealed for AddThingToThingGroup {}

impl ControlOperation for AddThingToThingGroup {
    const OPERATION: Operation = Operation::AddThingToThingGroup;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let (thing, group) = membership(
            service,
            self.thing_name,
            self.thing_arn.as_deref(),
            self.thing_group_name,
            self.thing_group_arn.as_deref(),
        )?;
        service.change_registry(now_ms, events, |registry| {
            if let Some(record) = registry.groups.get_mut(&group) {
                record.members.insert(thing);
            }
        });
        Ok(Empty {})
    }
}

/// RemoveThingFromThingGroup: the thing leaves the group (removing a non-member changes
/// nothing). For a CONTINUOUS job that no longer targets the thing, a QUEUED execution becomes
/// REMOVED (version kept, with `notify` / `notify-next`); an IN_PROGRESS one stays.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RemoveThingFromThingGroup {
    /// The group, by name…
    #[serde(default)]
    pub thing_group_name: Option<ThingGroupName>,
    /// … or by ARN.
    #[serde(default)]
    pub thing_group_arn: Option<String>,
    /// The thing, by name…
    #[serde(default)]
    pub thing_name: Option<ThingName>,
    /// … or by ARN.
    #[serde(default)]
    pub thing_arn: Option<String>,
}

impl RemoveThingFromThingGroup {
    /// A request removing `thing` from `group`.
    pub fn new(thing: ThingName, group: ThingGroupName) -> Self {
        Self {
            thing_group_name: Some(group),
            thing_group_arn: None,
            thing_name: Some(thing),
            thing_arn: None,
        }
    }
}

impl sealed::Sealed for RemoveThingFromThingGroup {}

impl ControlOperation for RemoveThingFromThingGroup {
    const OPERATION: Operation = Operation::RemoveThingFromThingGroup;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let (thing, group) = membership(
            service,
            self.thing_name,
            self.thing_arn.as_deref(),
            self.thing_group_name,
            self.thing_group_arn.as_deref(),
        )?;
        service.change_registry(now_ms, events, |registry| {
            if let Some(record) = registry.groups.get_mut(&group) {
                record.members.remove(&thing);
            }
        });
        Ok(Empty {})
    }
}

/// ListThingsInThingGroup: the group's things by name, in pages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListThingsInThingGroup {
    /// The group.
    pub thing_group_name: ThingGroupName,
    /// Accepted and ignored (no hierarchies).
    #[serde(default)]
    pub recursive: Option<bool>,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// The output of ListThingsInThingGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListThingsInThingGroupOutput {
    /// The things of this page, by name.
    pub things: Vec<ThingName>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListThingsInThingGroup {}

impl ControlOperation for ListThingsInThingGroup {
    const OPERATION: Operation = Operation::ListThingsInThingGroup;
    type Output = ListThingsInThingGroupOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListThingsInThingGroupOutput, ApiError> {
        let members = service
            .registry
            .members(&self.thing_group_name)
            .ok_or_else(|| no_group(&self.thing_group_name))?;
        let (things, next_token) = page(
            members.iter().cloned().collect(),
            self.max_results,
            self.next_token.as_deref(),
        )?;
        Ok(ListThingsInThingGroupOutput { things, next_token })
    }
}

/// ListThingGroupsForThing: the groups of a registered thing, by name, in pages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListThingGroupsForThing {
    /// The thing.
    pub thing_name: ThingName,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListThingGroupsForThing {}

impl ControlOperation for ListThingGroupsForThing {
    const OPERATION: Operation = Operation::ListThingGroupsForThing;
    type Output = ListThingGroupsOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListThingGroupsOutput, ApiError> {
        if !service.registry.things.contains_key(&self.thing_name) {
            return Err(no_thing(&self.thing_name));
        }
        let groups: Vec<GroupNameAndArn> = service
            .registry
            .groups_of(&self.thing_name)
            .iter()
            .map(GroupNameAndArn::of)
            .collect();
        let (thing_groups, next_token) =
            page(groups, self.max_results, self.next_token.as_deref())?;
        Ok(ListThingGroupsOutput {
            thing_groups,
            next_token,
        })
    }
}
