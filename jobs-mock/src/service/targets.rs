//! Job targets as AWS takes them — thing and thing-group ARNs of registered things and groups
//! — and what a change of group membership does to CONTINUOUS jobs.

use std::collections::BTreeSet;
use std::fmt;

use jobs_core::{JobId, JobStatus, ThingName};

use super::api::{ACCOUNT_ID, ApiError, ApiErrorKind, REGION, thing_arn};
use super::job_record::TargetSelection;
use super::jobs_service::{JobsService, Outgoing};
use super::registry::{Registry, ThingGroupName, group_arn};
use super::state::seconds;

/// One target of a job: a thing or a thing group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Thing(ThingName),
    Group(ThingGroupName),
}

impl fmt::Display for Target {
    /// The target's ARN.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Thing(thing) => f.write_str(&thing_arn(thing)),
            Self::Group(group) => f.write_str(&group_arn(group)),
        }
    }
}

/// Parses a target ARN: `arn:aws:iot:us-east-1:123456789012:thing/NAME` or
/// `…:thinggroup/NAME`. Anything else (a bare thing name included) is an
/// `InvalidRequestException`; an ARN of another region or account names nothing here: a
/// `ResourceNotFoundException`.
pub(crate) fn parse_target(target: &str) -> Result<Target, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "Invalid target {target:?}: targets are thing or thing-group ARNs, such as \
             arn:aws:iot:{REGION}:{ACCOUNT_ID}:thing/pump-07 or \
             arn:aws:iot:{REGION}:{ACCOUNT_ID}:thinggroup/pumps"
        ))
    };
    let rest = target.strip_prefix("arn:").ok_or_else(invalid)?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "iot", region, account, resource] = parts.as_slice() else {
        return Err(invalid());
    };
    let parsed = match resource.split_once('/') {
        Some(("thing", name)) => ThingName::new(name).map(Target::Thing).ok(),
        Some(("thinggroup", name)) => ThingGroupName::new(name).map(Target::Group).ok(),
        _ => None,
    }
    .ok_or_else(invalid)?;
    if *partition != "aws" || *region != REGION || *account != ACCOUNT_ID {
        return Err(ApiError::new(
            ApiErrorKind::ResourceNotFound,
            format!(
                "Job target {target} not found: this emulator is account {ACCOUNT_ID} in {REGION}"
            ),
        ));
    }
    Ok(parsed)
}

impl Registry {
    /// The things `target` names now: the thing, or the group's members (in name order).
    /// `ResourceNotFoundException` when the thing or group is not registered.
    pub(crate) fn resolve(&self, target: &Target) -> Result<Vec<ThingName>, ApiError> {
        match target {
            Target::Thing(thing) if self.things.contains_key(thing) => Ok(vec![thing.clone()]),
            Target::Thing(thing) => Err(ApiError::new(
                ApiErrorKind::ResourceNotFound,
                format!(
                    "Job target {target} not found: thing {thing} is not registered (CreateThing)"
                ),
            )),
            Target::Group(group) => self
                .members(group)
                .map(|members| members.iter().cloned().collect())
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::ResourceNotFound,
                        format!("Job target {target} not found: no thing group {group}"),
                    )
                }),
        }
    }
}

/// Parses and resolves targets: the distinct targets in order, and the distinct things they
/// name now, in order.
pub(crate) fn resolve_targets(
    registry: &Registry,
    targets: &[String],
) -> Result<(Vec<Target>, Vec<ThingName>), ApiError> {
    let mut parsed: Vec<Target> = Vec::new();
    let mut things: Vec<ThingName> = Vec::new();
    for text in targets {
        let target = parse_target(text)?;
        for thing in registry.resolve(&target)? {
            if !things.contains(&thing) {
                things.push(thing);
            }
        }
        if !parsed.contains(&target) {
            parsed.push(target);
        }
    }
    Ok((parsed, things))
}

impl JobsService {
    /// The (job, thing) pairs of every CONTINUOUS job that is not cancelled, for each thing it
    /// targets now.
    fn continuous_pairs(&self) -> BTreeSet<(JobId, ThingName)> {
        let mut pairs = BTreeSet::new();
        for (id, record) in &self.jobs {
            if record.selection != TargetSelection::Continuous || record.cancellation.is_some() {
                continue;
            }
            for target in &record.targets {
                for thing in self.registry.resolve(target).unwrap_or_default() {
                    pairs.insert((id.clone(), thing));
                }
            }
        }
        pairs
    }

    /// Changes the registry with `change` and applies what the membership change means for
    /// CONTINUOUS jobs, appending the events:
    ///
    /// - a thing that became a target gets a new execution (execution number + 1 if it ran
    ///   the job before) unless one is pending or waiting for the rollout;
    /// - a thing that stopped being a target has its QUEUED execution set to REMOVED (version
    ///   kept), or leaves the rollout's waiting list; an IN_PROGRESS execution stays.
    pub(crate) fn change_registry<R>(
        &mut self,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
        change: impl FnOnce(&mut Registry) -> R,
    ) -> R {
        let before = self.continuous_pairs();
        let result = change(&mut self.registry);
        let after = self.continuous_pairs();
        for (job, thing) in before.difference(&after) {
            self.untarget(job, thing, now_ms, events);
        }
        for (job, thing) in after.difference(&before) {
            self.target(job, thing, now_ms, events);
        }
        result
    }

    /// `thing` became a target of `job`: a new execution unless one is pending (or waiting).
    pub(crate) fn target(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        if !self.has_pending(job, thing) {
            self.offer(job, thing, now_ms, events);
        }
    }

    /// `thing` is no longer a target of `job`: QUEUED → REMOVED; dropped from the rollout.
    fn untarget(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        if let Some(record) = self.jobs.get_mut(job) {
            record.withdraw(thing);
        }
        let queued = self
            .things
            .get(thing)
            .and_then(|state| state.get(job, None))
            .is_some_and(|e| e.status == JobStatus::Queued);
        if queued {
            self.mutate(thing, now_ms, events, |state| {
                if let Some(execution) = state.get_mut(job, None) {
                    execution.finish(JobStatus::Removed, seconds(now_ms));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_thing_or_group_arns_of_this_account_and_region() {
        assert_eq!(
            parse_target("arn:aws:iot:us-east-1:123456789012:thing/pump-07").unwrap(),
            Target::Thing(ThingName::new("pump-07").unwrap())
        );
        assert_eq!(
            parse_target("arn:aws:iot:us-east-1:123456789012:thinggroup/pumps").unwrap(),
            Target::Group(ThingGroupName::new("pumps").unwrap())
        );
        for bad in [
            "pump-07",
            "arn:aws:s3:::bucket/key",
            "arn:aws:iot:us-east-1:123456789012:job/j1",
            "arn:aws:iot:us-east-1:123456789012:thing/bad name",
            "arn:aws:iot:us-east-1:123456789012:thing/",
            "arn:nonsense",
            "",
        ] {
            assert_eq!(
                parse_target(bad).unwrap_err().kind,
                ApiErrorKind::InvalidRequest,
                "{bad}"
            );
        }
        for elsewhere in [
            "arn:aws:iot:eu-west-1:123456789012:thing/pump-07",
            "arn:aws:iot:us-east-1:111122223333:thinggroup/pumps",
            "arn:aws-cn:iot:us-east-1:123456789012:thing/pump-07",
        ] {
            assert_eq!(
                parse_target(elsewhere).unwrap_err().kind,
                ApiErrorKind::ResourceNotFound,
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn a_target_arn_prints_as_given() {
        for arn in [
            "arn:aws:iot:us-east-1:123456789012:thing/pump-07",
            "arn:aws:iot:us-east-1:123456789012:thinggroup/pumps",
        ] {
            assert_eq!(parse_target(arn).unwrap().to_string(), arn);
        }
    }
}
