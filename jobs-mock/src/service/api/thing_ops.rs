//! The thing operations of the registry: CreateThing, DescribeThing, ListThings, DeleteThing.

use std::collections::BTreeMap;

use jobs_core::ThingName;
use serde::{Deserialize, Serialize};

use super::super::jobs_service::{JobsService, Outgoing};
use super::super::registry::{Attributes, ThingRecord};
use super::shapes::Empty;
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, page, sealed, thing_arn};

/// `attributePayload`: attributes of a thing or group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AttributePayload {
    /// Names (up to 128 of `[a-zA-Z0-9_.,@/:#-]`) and values (up to 800 of
    /// `[a-zA-Z0-9_.,@/:#=\[\]-]`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Accepted (it matters for updates, which are not emulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
}

impl AttributePayload {
    /// The attributes, checked against the model's patterns.
    pub(crate) fn checked(self) -> Result<Attributes, ApiError> {
        for (name, value) in &self.attributes {
            let name_ok = !name.is_empty()
                && name.chars().count() <= 128
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c));
            let value_ok = value.chars().count() <= 800
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.,@/:#=[]-".contains(c));
            if !name_ok || !value_ok {
                return Err(ApiError::invalid(format!(
                    "invalid attribute {name:?}: {value:?} (names: 1 to 128 of \
                     [a-zA-Z0-9_.,@/:#-]; values: up to 800 of [a-zA-Z0-9_.,@/:#=\\[\\]-])"
                )));
            }
        }
        Ok(self.attributes)
    }
}

/// CreateThing: registers a thing. Creating an existing thing again with the same attributes
/// succeeds and changes nothing; with other attributes it is a ResourceAlreadyExistsException
/// (documented). Thing types and billing groups are not emulated: naming one is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CreateThing {
    /// The thing's name.
    pub thing_name: ThingName,
    /// Its attributes.
    #[serde(default)]
    pub attribute_payload: Option<AttributePayload>,
    /// Refused: thing types are not emulated.
    #[serde(default)]
    pub thing_type_name: Option<String>,
    /// Refused: billing groups are not emulated.
    #[serde(default)]
    pub billing_group_name: Option<String>,
}

impl CreateThing {
    /// A request registering `thing_name` with no attributes.
    pub fn new(thing_name: ThingName) -> Self {
        Self {
            thing_name,
            attribute_payload: None,
            thing_type_name: None,
            billing_group_name: None,
        }
    }
}

/// The output of CreateThing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateThingOutput {
    /// The name.
    pub thing_name: ThingName,
    /// The ARN.
    pub thing_arn: String,
    /// The ID.
    pub thing_id: String,
}

impl sealed::Sealed for CreateThing {}

impl ControlOperation for CreateThing {
    const OPERATION: Operation = Operation::CreateThing;
    type Output = CreateThingOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<CreateThingOutput, ApiError> {
        if self.thing_type_name.is_some() || self.billing_group_name.is_some() {
            return Err(ApiError::invalid(
                "thing types and billing groups are not emulated: create the thing without \
                 thingTypeName and billingGroupName",
            ));
        }
        let attributes = self.attribute_payload.unwrap_or_default().checked()?;
        let registry = &mut service.registry;
        let id = match registry.things.get(&self.thing_name) {
            Some(existing) if existing.attributes == attributes => existing.id.clone(),
            Some(_) => {
                return Err(ApiError::new(
                    ApiErrorKind::ResourceAlreadyExists,
                    format!(
                        "Thing {} already exists with a different configuration.",
                        self.thing_name
                    ),
                ));
            }
            None => {
                let id = registry.next_id();
                let record = ThingRecord {
                    id: id.clone(),
                    attributes,
                    version: 1,
                };
                registry.things.insert(self.thing_name.clone(), record);
                id
            }
        };
        Ok(CreateThingOutput {
            thing_arn: thing_arn(&self.thing_name),
            thing_name: self.thing_name,
            thing_id: id,
        })
    }
}

/// DescribeThing: a registered thing; ResourceNotFoundException if it is not registered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DescribeThing {
    /// The thing's name.
    pub thing_name: ThingName,
}

/// The output of DescribeThing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DescribeThingOutput {
    /// The default MQTT client ID: the thing name (documented).
    pub default_client_id: String,
    /// The name.
    pub thing_name: ThingName,
    /// The ID.
    pub thing_id: String,
    /// The ARN.
    pub thing_arn: String,
    /// The attributes.
    pub attributes: BTreeMap<String, String>,
    /// The version: 1 (updates are not emulated).
    pub version: i64,
}

impl sealed::Sealed for DescribeThing {}

impl ControlOperation for DescribeThing {
    const OPERATION: Operation = Operation::DescribeThing;
    type Output = DescribeThingOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<DescribeThingOutput, ApiError> {
        let record = service
            .registry
            .things
            .get(&self.thing_name)
            .ok_or_else(|| no_thing(&self.thing_name))?;
        Ok(DescribeThingOutput {
            default_client_id: self.thing_name.to_string(),
            thing_id: record.id.clone(),
            thing_arn: thing_arn(&self.thing_name),
            attributes: record.attributes.clone(),
            version: record.version,
            thing_name: self.thing_name,
        })
    }
}

/// The error for a thing that is not registered.
pub(super) fn no_thing(thing: &ThingName) -> ApiError {
    ApiError::new(
        ApiErrorKind::ResourceNotFound,
        format!("Thing {thing} cannot be found."),
    )
}

/// ListThings: registered things by name, optionally those with an attribute (equal to, or
/// with `usePrefixAttributeValue` starting with, `attributeValue`), in pages. No thing has a
/// type here, so a `thingTypeName` filter lists none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListThings {
    /// Only things with this attribute.
    #[serde(default)]
    pub attribute_name: Option<String>,
    /// … with this value.
    #[serde(default)]
    pub attribute_value: Option<String>,
    /// `attributeValue` is a prefix.
    #[serde(default)]
    pub use_prefix_attribute_value: Option<bool>,
    /// Only things of this type (none here).
    #[serde(default)]
    pub thing_type_name: Option<String>,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// `ThingAttribute`: a thing as ListThings returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ThingAttribute {
    /// The name.
    pub thing_name: ThingName,
    /// The ARN.
    pub thing_arn: String,
    /// The attributes.
    pub attributes: BTreeMap<String, String>,
    /// The version.
    pub version: i64,
}

/// The output of ListThings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListThingsOutput {
    /// The things of this page.
    pub things: Vec<ThingAttribute>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListThings {}

impl ControlOperation for ListThings {
    const OPERATION: Operation = Operation::ListThings;
    type Output = ListThingsOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListThingsOutput, ApiError> {
        let prefix = self.use_prefix_attribute_value.unwrap_or(false);
        let matches = |attributes: &Attributes| match (&self.attribute_name, &self.attribute_value)
        {
            (None, _) => true,
            (Some(name), None) => attributes.contains_key(name),
            (Some(name), Some(value)) => attributes.get(name).is_some_and(|v| {
                if prefix {
                    v.starts_with(value.as_str())
                } else {
                    v == value
                }
            }),
        };
        let things: Vec<ThingAttribute> = service
            .registry
            .things
            .iter()
            .filter(|_| self.thing_type_name.is_none())
            .filter(|(_, record)| matches(&record.attributes))
            .map(|(name, record)| ThingAttribute {
                thing_name: name.clone(),
                thing_arn: thing_arn(name),
                attributes: record.attributes.clone(),
                version: record.version,
            })
            .collect();
        let (things, next_token) = page(things, self.max_results, self.next_token.as_deref())?;
        Ok(ListThingsOutput { things, next_token })
    }
}

/// DeleteThing: unregisters a thing; it leaves its groups (with what that means for
/// CONTINUOUS jobs). Deleting a thing that is not registered succeeds (documented). Its
/// executions stay as they are (our choice). `expectedVersion` other than the thing's is a
/// VersionConflictException.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DeleteThing {
    /// The thing's name.
    pub thing_name: ThingName,
    /// Refuse unless the thing has this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

impl sealed::Sealed for DeleteThing {}

impl ControlOperation for DeleteThing {
    const OPERATION: Operation = Operation::DeleteThing;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let Some(record) = service.registry.things.get(&self.thing_name) else {
            return Ok(Empty {});
        };
        if let Some(expected) = self.expected_version
            && expected != record.version
        {
            return Err(ApiError::new(
                ApiErrorKind::VersionConflict,
                format!(
                    "expectedVersion {expected} does not match the thing's version {}",
                    record.version
                ),
            ));
        }
        let thing = self.thing_name;
        service.change_registry(now_ms, events, |registry| {
            registry.things.remove(&thing);
            for group in registry.groups.values_mut() {
                group.members.remove(&thing);
            }
        });
        Ok(Empty {})
    }
}
