//! Jobs topic strings: builders for what a device publishes and subscribes to, and an exact
//! classifier for what it receives.
//!
//! Classification works on whole topic levels, starting with their number, never on prefixes:
//! a reply for job `a1` can never be taken for one about job `a`, and job IDs such as `get` or
//! `notify` are classified correctly.

use crate::Operation;
pub use crate::names::NEXT_JOB;
use crate::names::{JobId, ThingName};
use crate::validate;

const PREFIX: &str = "$aws/things/";

/// Which of the two reply topics a reply came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a reply is accepted or rejected; nothing else exists"
)]
pub enum ReplyKind {
    /// `…/accepted`.
    Accepted,
    /// `…/rejected`.
    Rejected,
}

impl ReplyKind {
    /// The last topic level: `accepted` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
}

/// A Jobs topic, split into its meaning; borrowed from the topic string. The one classifier
/// for both directions: the client classifies what it receives, the `jobs-mock` simulator
/// what devices publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobsTopic<'a> {
    /// A request a device publishes: `…/jobs/get`, `…/jobs/start-next`, `…/jobs/{job}/get` or
    /// `…/jobs/{job}/update`.
    Request {
        /// The thing the request is for.
        thing: &'a str,
        /// The job level of a Describe or Update topic: a job ID or `$next`.
        job: Option<&'a str>,
        /// The operation requested.
        operation: Operation,
    },
    /// A reply: a request topic plus `/accepted` or `/rejected`.
    Reply {
        /// The thing the reply is for.
        thing: &'a str,
        /// The job level of a Describe or Update reply: a job ID or `$next`.
        job: Option<&'a str>,
        /// The operation it answers.
        operation: Operation,
        /// Accepted or rejected.
        kind: ReplyKind,
    },
    /// `$aws/things/{thing}/jobs/notify`.
    Notify {
        /// The thing the event is for.
        thing: &'a str,
    },
    /// `$aws/things/{thing}/jobs/notify-next`.
    NotifyNext {
        /// The thing the event is for.
        thing: &'a str,
    },
}

impl<'a> JobsTopic<'a> {
    /// Classifies `topic`, or returns `None` for anything that is not exactly a Jobs request,
    /// reply or event topic of a syntactically valid thing and job (`$next` is accepted as the
    /// job level of Describe and Update; the service decides what an Update of `$next` gets).
    pub fn parse(topic: &'a str) -> Option<Self> {
        let rest = topic.strip_prefix(PREFIX)?;
        let mut levels = rest.split('/');
        let thing = levels.next()?;
        if levels.next()? != "jobs" || validate::thing_name(thing).is_err() {
            return None;
        }
        let (first, second, third, fourth) =
            (levels.next()?, levels.next(), levels.next(), levels.next());
        if levels.next().is_some() {
            return None;
        }
        let request = |job, operation| Self::Request {
            thing,
            job,
            operation,
        };
        let reply = |job, operation, kind: &str| {
            let kind = match kind {
                "accepted" => ReplyKind::Accepted,
                "rejected" => ReplyKind::Rejected,
                _ => return None,
            };
            Some(Self::Reply {
                thing,
                job,
                operation,
                kind,
            })
        };
        match (first, second, third, fourth) {
            ("notify", None, None, None) => Some(Self::Notify { thing }),
            ("notify-next", None, None, None) => Some(Self::NotifyNext { thing }),
            ("get", None, None, None) => Some(request(None, Operation::GetPending)),
            ("start-next", None, None, None) => Some(request(None, Operation::StartNext)),
            ("get", Some(kind @ ("accepted" | "rejected")), None, None) => {
                reply(None, Operation::GetPending, kind)
            }
            ("start-next", Some(kind @ ("accepted" | "rejected")), None, None) => {
                reply(None, Operation::StartNext, kind)
            }
            (job, Some(op), third, None) if is_job_level(job) => {
                let operation = match op {
                    "get" => Operation::Describe,
                    "update" => Operation::Update,
                    _ => return None,
                };
                match third {
                    None => Some(request(Some(job), operation)),
                    Some(kind) => reply(Some(job), operation, kind),
                }
            }
            _ => None,
        }
    }

    /// The thing the topic belongs to.
    pub fn thing(&self) -> &'a str {
        match *self {
            Self::Notify { thing }
            | Self::NotifyNext { thing }
            | Self::Request { thing, .. }
            | Self::Reply { thing, .. } => thing,
        }
    }
}

fn is_job_level(level: &str) -> bool {
    level == NEXT_JOB || validate::job_id(level).is_ok()
}

/// Topic builders for one thing.
#[derive(Debug, Clone)]
pub(crate) struct ThingTopics {
    /// `$aws/things/{thing}/jobs/`.
    base: String,
}

impl ThingTopics {
    pub(crate) fn new(thing: &ThingName) -> Self {
        Self {
            base: format!("{PREFIX}{thing}/jobs/"),
        }
    }

    fn with(&self, suffix: &str) -> String {
        let mut topic = String::with_capacity(self.base.len() + suffix.len());
        topic.push_str(&self.base);
        topic.push_str(suffix);
        topic
    }

    /// An event topic of the thing: `…/jobs/{name}` (`notify`, `notify-next`).
    pub(crate) fn event(&self, name: &str) -> String {
        self.with(name)
    }

    /// The request topic of `operation`; `job` (a job ID or `$next`) names the job of Describe
    /// and Update, `$next` when `None`.
    pub(crate) fn request(&self, operation: Operation, job: Option<&str>) -> String {
        let job = job.unwrap_or(NEXT_JOB);
        match operation {
            Operation::GetPending => self.with("get"),
            Operation::StartNext => self.with("start-next"),
            Operation::Describe => [&self.base, job, "/get"].concat(),
            Operation::Update => [&self.base, job, "/update"].concat(),
        }
    }

    /// The six long-lived filters covering every reply and event of the thing (one SUBSCRIBE;
    /// AWS IoT takes up to 8 per SUBSCRIBE).
    pub(crate) fn filters(&self) -> [String; 6] {
        [
            self.with("notify"),
            self.with("notify-next"),
            self.with("get/+"),
            self.with("start-next/+"),
            self.with("+/get/+"),
            self.with("+/update/+"),
        ]
    }
}

/// Builds the request topic of `operation` for `thing` (a public helper for ports, tools and
/// simulators); `job` is needed for Describe and Update (`None`: `$next`).
pub fn request_topic(thing: &ThingName, operation: Operation, job: Option<&JobId>) -> String {
    ThingTopics::new(thing).request(operation, job.map(JobId::as_str))
}

/// Builds `…/jobs/notify` for `thing`.
pub fn notify_topic(thing: &ThingName) -> String {
    ThingTopics::new(thing).with("notify")
}

/// Builds `…/jobs/notify-next` for `thing`.
pub fn notify_next_topic(thing: &ThingName) -> String {
    ThingTopics::new(thing).with("notify-next")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foobar() -> ThingTopics {
        ThingTopics::new(&ThingName::new("foobar").unwrap())
    }

    #[test]
    fn topics_are_built_exactly_like_the_c_library_vectors() {
        let t = foobar();
        let thing = ThingName::new("foobar").unwrap();
        assert_eq!(
            notify_next_topic(&thing),
            "$aws/things/foobar/jobs/notify-next"
        );
        assert_eq!(notify_topic(&thing), "$aws/things/foobar/jobs/notify");
        assert_eq!(
            t.request(Operation::StartNext, None),
            "$aws/things/foobar/jobs/start-next"
        );
        assert_eq!(
            t.request(Operation::GetPending, None),
            "$aws/things/foobar/jobs/get"
        );
        assert_eq!(
            t.request(Operation::Describe, None),
            "$aws/things/foobar/jobs/$next/get"
        );
        assert_eq!(
            t.request(Operation::Describe, Some("1234")),
            "$aws/things/foobar/jobs/1234/get"
        );
        assert_eq!(
            t.request(Operation::Update, Some("1234")),
            "$aws/things/foobar/jobs/1234/update"
        );
        assert_eq!(t.filters()[5], "$aws/things/foobar/jobs/+/update/+");
    }

    #[test]
    fn the_c_library_matching_vectors_classify_exactly() {
        use Operation::*;
        use ReplyKind::{Accepted, Rejected};
        let reply = |job, operation, kind| JobsTopic::Reply {
            thing: "foobar",
            job,
            operation,
            kind,
        };
        let cases = [
            (
                "$aws/things/foobar/jobs/notify",
                JobsTopic::Notify { thing: "foobar" },
            ),
            (
                "$aws/things/foobar/jobs/notify-next",
                JobsTopic::NotifyNext { thing: "foobar" },
            ),
            (
                "$aws/things/foobar/jobs/get/accepted",
                reply(None, GetPending, Accepted),
            ),
            (
                "$aws/things/foobar/jobs/get/rejected",
                reply(None, GetPending, Rejected),
            ),
            (
                "$aws/things/foobar/jobs/start-next/accepted",
                reply(None, StartNext, Accepted),
            ),
            (
                "$aws/things/foobar/jobs/start-next/rejected",
                reply(None, StartNext, Rejected),
            ),
            (
                "$aws/things/foobar/jobs/12345/get/accepted",
                reply(Some("12345"), Describe, Accepted),
            ),
            (
                "$aws/things/foobar/jobs/ab224-z/get/rejected",
                reply(Some("ab224-z"), Describe, Rejected),
            ),
            (
                "$aws/things/foobar/jobs/$next/get/accepted",
                reply(Some("$next"), Describe, Accepted),
            ),
            (
                "$aws/things/foobar/jobs/$next/get/rejected",
                reply(Some("$next"), Describe, Rejected),
            ),
            (
                "$aws/things/foobar/jobs/12345/update/accepted",
                reply(Some("12345"), Update, Accepted),
            ),
            (
                "$aws/things/foobar/jobs/ab224-z/update/rejected",
                reply(Some("ab224-z"), Update, Rejected),
            ),
        ];
        for (topic, expected) in cases {
            assert_eq!(JobsTopic::parse(topic), Some(expected), "{topic}");
        }
    }

    #[test]
    fn the_c_library_non_matching_vectors_are_refused() {
        for topic in [
            "$aws/things/foobar/jobs/notifyzz",
            "$aws/things/foobar/jobs/ab224-z/update/rejectedzz",
            "$aws/things/foobarzz",
            "$aws/things/foobar/jobz/notify",
            "$awz/thingz/foobar/jobs/notify",
            "$aws/things/foobar/jobs/get/accepted/more",
            "$aws/things/foobar/jobs/bad:id/get",
            "$aws/things/foobar/jobs/a/b/get/accepted",
            "$aws/things/foobar/jobs/notify/extra",
            "$aws/things/foo+bar/jobs/notify",
            "$aws/things//jobs/notify",
        ] {
            assert_eq!(JobsTopic::parse(topic), None, "{topic}");
        }
        // Thing names are case-sensitive: the topic parses, but for another thing.
        assert_eq!(
            JobsTopic::parse("$aws/things/FOOBAR/jobs/notify").map(|t| t.thing()),
            Some("FOOBAR")
        );
    }

    #[test]
    fn job_ids_that_look_like_keywords_are_classified_by_level_count() {
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/notify/get/accepted"),
            Some(JobsTopic::Reply {
                thing: "foobar",
                job: Some("notify"),
                operation: Operation::Describe,
                kind: ReplyKind::Accepted
            })
        );
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/get/update/rejected"),
            Some(JobsTopic::Reply {
                thing: "foobar",
                job: Some("get"),
                operation: Operation::Update,
                kind: ReplyKind::Rejected
            })
        );
    }

    #[test]
    fn request_topics_classify_as_requests_including_next() {
        let request = |job, operation| {
            Some(JobsTopic::Request {
                thing: "foobar",
                job,
                operation,
            })
        };
        let t = foobar();
        for (operation, job) in [
            (Operation::GetPending, None),
            (Operation::StartNext, None),
            (Operation::Describe, Some("1234")),
            (Operation::Update, Some("1234")),
        ] {
            assert_eq!(
                JobsTopic::parse(&t.request(operation, job)),
                request(job, operation)
            );
        }
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/$next/get"),
            request(Some("$next"), Operation::Describe)
        );
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/$next/update"),
            request(Some("$next"), Operation::Update)
        );
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/1234/delete"),
            None
        );
    }

    #[test]
    fn job_ids_named_like_operations_are_job_ids_in_requests() {
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/get/get"),
            Some(JobsTopic::Request {
                thing: "foobar",
                job: Some("get"),
                operation: Operation::Describe
            })
        );
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/start-next/update"),
            Some(JobsTopic::Request {
                thing: "foobar",
                job: Some("start-next"),
                operation: Operation::Update
            })
        );
    }

    #[test]
    fn the_longest_topic_fits_the_broker_limits() {
        let thing = ThingName::new("t".repeat(128)).unwrap();
        let topic = format!(
            "{}/accepted",
            ThingTopics::new(&thing).request(Operation::Update, Some(&"j".repeat(64)))
        );
        assert_eq!(topic.len(), 226);
        assert_eq!(topic.matches('/').count(), 6);
        assert!(JobsTopic::parse(&topic).is_some());
    }
}
