//! The static thing-group operations of the registry: CreateThingGroup, DescribeThingGroup,
//! ListThingGroups, DeleteThingGroup (membership: [`membership_ops`](super::membership_ops)).

use std::collections::BTreeSet;

use jobs_core::validate;
use serde::{Deserialize, Serialize};

use super::super::jobs_service::{JobsService, Outgoing};
use super::super::registry::{GroupRecord, ThingGroupName, group_arn};
use super::super::state::seconds;
use super::shapes::Empty;
use super::thing_ops::AttributePayload;
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, page, sealed};

/// Longest group description, in characters.
const DESCRIPTION_MAX: usize = 2028;

/// `thingGroupProperties`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ThingGroupProperties {
    /// Up to 2028 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thing_group_description: Option<String>,
    /// The group's attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_payload: Option<AttributePayload>,
}

/// `GroupNameAndArn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GroupNameAndArn {
    /// The group's name.
    pub group_name: ThingGroupName,
    /// The group's ARN.
    pub group_arn: String,
}

impl GroupNameAndArn {
    pub(super) fn of(group: &ThingGroupName) -> Self {
        Self {
            group_name: group.clone(),
            group_arn: group_arn(group),
        }
    }
}

pub(super) fn no_group(group: &ThingGroupName) -> ApiError {
    ApiError::new(
        ApiErrorKind::ResourceNotFound,
        format!("Thing group {group} cannot be found."),
    )
}

/// CreateThingGroup: creates a static group. Creating an existing group again with the same
/// properties succeeds and changes nothing; with others it is a
/// ResourceAlreadyExistsException (our choice, as CreateThing documents). Group hierarchies
/// (`parentGroupName`) and `tags` are not emulated: naming one is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CreateThingGroup {
    /// The group's name.
    pub thing_group_name: ThingGroupName,
    /// Its description and attributes.
    #[serde(default)]
    pub thing_group_properties: Option<ThingGroupProperties>,
    /// Refused: hierarchies are not emulated.
    #[serde(default)]
    pub parent_group_name: Option<String>,
}

impl CreateThingGroup {
    /// A request creating the group `name` with no properties.
    pub fn new(name: ThingGroupName) -> Self {
        Self {
            thing_group_name: name,
            thing_group_properties: None,
            parent_group_name: None,
        }
    }
}

/// The output of CreateThingGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateThingGroupOutput {
    /// The name.
    pub thing_group_name: ThingGroupName,
    /// The ARN.
    pub thing_group_arn: String,
    /// The ID.
    pub thing_group_id: String,
}

impl sealed::Sealed for CreateThingGroup {}

impl ControlOperation for CreateThingGroup {
    const OPERATION: Operation = Operation::CreateThingGroup;
    type Output = CreateThingGroupOutput;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<CreateThingGroupOutput, ApiError> {
        if self.parent_group_name.is_some() {
            return Err(ApiError::invalid(
                "thing-group hierarchies are not emulated: create the group without \
                 parentGroupName",
            ));
        }
        let properties = self.thing_group_properties.unwrap_or_default();
        if let Some(description) = &properties.thing_group_description {
            validate::text(description, DESCRIPTION_MAX).map_err(|error| {
                ApiError::invalid(format!("invalid thingGroupDescription: {error}"))
            })?;
        }
        let attributes = properties.attribute_payload.unwrap_or_default().checked()?;
        let registry = &mut service.registry;
        let id = match registry.groups.get(&self.thing_group_name) {
            Some(g)
                if g.attributes == attributes
                    && g.description == properties.thing_group_description =>
            {
                g.id.clone()
            }
            Some(_) => {
                return Err(ApiError::new(
                    ApiErrorKind::ResourceAlreadyExists,
                    format!(
                        "Thing group {} already exists with different properties.",
                        self.thing_group_name
                    ),
                ));
            }
            None => {
                let id = registry.next_id();
                let record = GroupRecord {
                    id: id.clone(),
                    description: properties.thing_group_description,
                    attributes,
                    version: 1,
                    created_at: seconds(now_ms),
                    members: BTreeSet::new(),
                };
                registry
                    .groups
                    .insert(self.thing_group_name.clone(), record);
                id
            }
        };
        Ok(CreateThingGroupOutput {
            thing_group_arn: group_arn(&self.thing_group_name),
            thing_group_name: self.thing_group_name,
            thing_group_id: id,
        })
    }
}

/// DescribeThingGroup: a group; ResourceNotFoundException if there is none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DescribeThingGroup {
    /// The group's name.
    pub thing_group_name: ThingGroupName,
}

/// `thingGroupMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ThingGroupMetadata {
    /// Always empty (no hierarchies).
    pub root_to_parent_thing_groups: Vec<GroupNameAndArn>,
    /// When the group was created (seconds since the epoch).
    pub creation_date: i64,
}

/// The output of DescribeThingGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DescribeThingGroupOutput {
    /// The name.
    pub thing_group_name: ThingGroupName,
    /// The ID.
    pub thing_group_id: String,
    /// The ARN.
    pub thing_group_arn: String,
    /// The version: 1 (updates are not emulated).
    pub version: i64,
    /// Description and attributes.
    pub thing_group_properties: ThingGroupProperties,
    /// Creation date and (empty) ancestry.
    pub thing_group_metadata: ThingGroupMetadata,
}

impl sealed::Sealed for DescribeThingGroup {}

impl ControlOperation for DescribeThingGroup {
    const OPERATION: Operation = Operation::DescribeThingGroup;
    type Output = DescribeThingGroupOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<DescribeThingGroupOutput, ApiError> {
        let group = service
            .registry
            .groups
            .get(&self.thing_group_name)
            .ok_or_else(|| no_group(&self.thing_group_name))?;
        Ok(DescribeThingGroupOutput {
            thing_group_id: group.id.clone(),
            thing_group_arn: group_arn(&self.thing_group_name),
            version: group.version,
            thing_group_properties: ThingGroupProperties {
                thing_group_description: group.description.clone(),
                attribute_payload: Some(AttributePayload {
                    attributes: group.attributes.clone(),
                    merge: None,
                }),
            },
            thing_group_metadata: ThingGroupMetadata {
                root_to_parent_thing_groups: Vec::new(),
                creation_date: group.created_at,
            },
            thing_group_name: self.thing_group_name,
        })
    }
}

/// ListThingGroups: groups by name, optionally those whose name starts with
/// `namePrefixFilter`, in pages. With `parentGroup` (no hierarchies here): none, or
/// ResourceNotFoundException if that group does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListThingGroups {
    /// Only children of this group (none here).
    #[serde(default)]
    pub parent_group: Option<ThingGroupName>,
    /// Only groups whose name starts with this.
    #[serde(default)]
    pub name_prefix_filter: Option<String>,
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

/// The output of ListThingGroups and ListThingGroupsForThing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListThingGroupsOutput {
    /// The groups of this page.
    pub thing_groups: Vec<GroupNameAndArn>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListThingGroups {}

impl ControlOperation for ListThingGroups {
    const OPERATION: Operation = Operation::ListThingGroups;
    type Output = ListThingGroupsOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListThingGroupsOutput, ApiError> {
        let groups = &service.registry.groups;
        if let Some(parent) = &self.parent_group
            && !groups.contains_key(parent)
        {
            return Err(no_group(parent));
        }
        let prefix = self.name_prefix_filter.as_deref().unwrap_or("");
        let listed: Vec<GroupNameAndArn> = groups
            .keys()
            .filter(|_| self.parent_group.is_none())
            .filter(|name| name.as_str().starts_with(prefix))
            .map(GroupNameAndArn::of)
            .collect();
        let (thing_groups, next_token) =
            page(listed, self.max_results, self.next_token.as_deref())?;
        Ok(ListThingGroupsOutput {
            thing_groups,
            next_token,
        })
    }
}

/// DeleteThingGroup: deletes a group; its members leave it first (with what that means for
/// CONTINUOUS jobs). Deleting a group that does not exist succeeds (botocore's model lists no
/// ResourceNotFoundException for it). `expectedVersion` other than the group's is a
/// VersionConflictException.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DeleteThingGroup {
    /// The group's name.
    pub thing_group_name: ThingGroupName,
    /// Refuse unless the group has this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

impl sealed::Sealed for DeleteThingGroup {}

impl ControlOperation for DeleteThingGroup {
    const OPERATION: Operation = Operation::DeleteThingGroup;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let Some(group) = service.registry.groups.get(&self.thing_group_name) else {
            return Ok(Empty {});
        };
        if let Some(expected) = self.expected_version
            && expected != group.version
        {
            return Err(ApiError::new(
                ApiErrorKind::VersionConflict,
                format!(
                    "expectedVersion {expected} does not match the group's version {}",
                    group.version
                ),
            ));
        }
        let name = self.thing_group_name;
        service.change_registry(now_ms, events, |registry| registry.groups.remove(&name));
        Ok(Empty {})
    }
}
