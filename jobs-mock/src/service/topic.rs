//! Classification of the topics a device publishes to: which Jobs API a request topic names.
//!
//! The levels are classified by `jobs-core`'s [`JobsTopic::parse`], the one classifier of
//! both directions: whole levels, never prefixes (job IDs such as `get`, `update` or
//! `start-next` are legal).

use jobs_core::topics::{JobsTopic, NEXT_JOB as NEXT};
use jobs_core::{JobId, Operation, ThingName};

/// The job named by a Describe or Update topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobRef {
    /// A job ID.
    Id(JobId),
    /// `$next`.
    Next,
}

/// What a request topic asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Api {
    /// `…/jobs/get`.
    GetPending,
    /// `…/jobs/start-next`.
    StartNext,
    /// `…/jobs/{job}/get`.
    Describe(JobRef),
    /// `…/jobs/{job}/update`.
    Update(JobRef),
}

/// The meaning of a topic for the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Classified {
    /// A request of an API for a thing.
    Request {
        /// The thing.
        thing: ThingName,
        /// The API.
        api: Api,
    },
    /// Inside `$aws/things/{thing}/jobs` but naming no API: answered with `InvalidTopic`.
    InvalidTopic,
    /// Not for the simulator: outside the Jobs namespace, or a reply or event topic (which the
    /// simulator itself publishes; answering those could loop).
    Ignored,
}

/// Classifies a topic a device published to, with `jobs-core`'s one Jobs topic classifier;
/// what it does not recognise inside `$aws/things/{thing}/jobs/` names no API.
pub(crate) fn classify(topic: &str) -> Classified {
    let levels: Vec<&str> = topic.split('/').collect();
    let rest = match levels.as_slice() {
        ["$aws", "things", _, "jobs", rest @ ..] => rest,
        _ => return Classified::Ignored,
    };
    // Reply and event topics (and anything shaped like one) are what the simulator publishes
    // itself; answering them could loop.
    if matches!(rest.last(), Some(&("accepted" | "rejected")))
        || matches!(rest, ["notify" | "notify-next"])
    {
        return Classified::Ignored;
    }
    let Some(JobsTopic::Request {
        thing,
        job,
        operation,
    }) = JobsTopic::parse(topic)
    else {
        return Classified::InvalidTopic;
    };
    let (Ok(thing), Some(job)) = (ThingName::new(thing), job_ref(job)) else {
        return Classified::InvalidTopic;
    };
    let api = match (operation, job) {
        (Operation::GetPending, _) => Api::GetPending,
        (Operation::StartNext, _) => Api::StartNext,
        (Operation::Describe, Some(job)) => Api::Describe(job),
        (Operation::Update, Some(job)) => Api::Update(job),
        _ => return Classified::InvalidTopic,
    };
    Classified::Request { thing, api }
}

/// The job level of a request topic: `Some(None)` when the topic has none, `None` when it is
/// not a job ID or `$next`.
fn job_ref(level: Option<&str>) -> Option<Option<JobRef>> {
    match level {
        None => Some(None),
        Some(NEXT) => Some(Some(JobRef::Next)),
        Some(id) => JobId::new(id).ok().map(|id| Some(JobRef::Id(id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(topic: &str) -> Option<Api> {
        match classify(topic) {
            Classified::Request { thing, api } => {
                assert_eq!(thing.as_str(), "foobar");
                Some(api)
            }
            _ => None,
        }
    }

    fn job(id: &str) -> JobRef {
        JobRef::Id(JobId::new(id).unwrap())
    }

    #[test]
    fn the_four_request_topics_are_recognised_by_exact_levels() {
        let base = "$aws/things/foobar/jobs";
        assert_eq!(request(&format!("{base}/get")), Some(Api::GetPending));
        assert_eq!(request(&format!("{base}/start-next")), Some(Api::StartNext));
        assert_eq!(
            request(&format!("{base}/1234/get")),
            Some(Api::Describe(job("1234")))
        );
        assert_eq!(
            request(&format!("{base}/$next/get")),
            Some(Api::Describe(JobRef::Next))
        );
        assert_eq!(
            request(&format!("{base}/1234/update")),
            Some(Api::Update(job("1234")))
        );
        assert_eq!(
            request(&format!("{base}/$next/update")),
            Some(Api::Update(JobRef::Next))
        );
    }

    #[test]
    fn job_ids_named_like_operations_are_job_ids() {
        let base = "$aws/things/foobar/jobs";
        assert_eq!(
            request(&format!("{base}/get/get")),
            Some(Api::Describe(job("get")))
        );
        assert_eq!(
            request(&format!("{base}/start-next/update")),
            Some(Api::Update(job("start-next")))
        );
        assert_eq!(
            request(&format!("{base}/notify/get")),
            Some(Api::Describe(job("notify")))
        );
    }

    #[test]
    fn replies_events_and_foreign_topics_are_ignored() {
        for topic in [
            "$aws/things/foobar/jobs/get/accepted",
            "$aws/things/foobar/jobs/start-next/rejected",
            "$aws/things/foobar/jobs/1234/get/accepted",
            "$aws/things/foobar/jobs/1234/update/rejected",
            "$aws/things/foobar/jobs/bogus/rejected",
            "$aws/things/foobar/jobs/notify",
            "$aws/things/foobar/jobs/notify-next",
            "$aws/things/foobar/shadow/get",
            "$awz/things/foobar/jobs/get",
            "other/topic",
            "",
        ] {
            assert_eq!(classify(topic), Classified::Ignored, "{topic}");
        }
    }

    #[test]
    fn unknown_topics_inside_the_jobs_namespace_are_invalid() {
        for topic in [
            "$aws/things/foobar/jobs",
            "$aws/things/foobar/jobs/",
            "$aws/things/foobar/jobs/getzz",
            "$aws/things/foobar/jobs/1234/delete",
            "$aws/things/foobar/jobs/bad:id/get",
            "$aws/things/foobar/jobs/1234/get/more",
            "$aws/things/bad name/jobs/get",
            "$aws/things//jobs/get",
        ] {
            assert_eq!(classify(topic), Classified::InvalidTopic, "{topic}");
        }
    }
}
