//! Jobs topic strings: builders for what a device publishes and subscribes to, and an exact
//! classifier for what it receives.
//!
//! Classification works on whole topic levels, starting with their number, never on prefixes:
//! a reply for job `a1` can never be taken for one about job `a`, and job IDs such as `get` or
//! `notify` are classified correctly.

pub use crate::names::NEXT_JOB;
use crate::names::{JobId, ThingName};

const PREFIX: &str = "$aws/things/";

/// The request a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// `…/jobs/get`: GetPendingJobExecutions.
    GetPending,
    /// `…/jobs/start-next`: StartNextPendingJobExecution.
    StartNext,
    /// `…/jobs/{job}/get`: DescribeJobExecution.
    Describe,
    /// `…/jobs/{job}/update`: UpdateJobExecution.
    Update,
}

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

/// An inbound Jobs topic, split into its meaning. Borrowed from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobsTopic<'a> {
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
    /// A reply: `…/jobs/get/{kind}`, `…/jobs/start-next/{kind}`, `…/jobs/{job}/get/{kind}` or
    /// `…/jobs/{job}/update/{kind}`.
    Reply {
        /// The thing the reply is for.
        thing: &'a str,
        /// The job of a Describe or Update reply (`$next` for Describe of the next execution).
        job: Option<&'a str>,
        /// The request it answers.
        request: RequestKind,
        /// Accepted or rejected.
        kind: ReplyKind,
    },
}

impl<'a> JobsTopic<'a> {
    /// Classifies `topic`, or returns `None` for anything that is not exactly a Jobs reply or
    /// event topic of a syntactically valid thing and job.
    pub fn parse(topic: &'a str) -> Option<Self> {
        let rest = topic.strip_prefix(PREFIX)?;
        let mut levels = rest.split('/');
        let thing = levels.next()?;
        if levels.next()? != "jobs" || ThingName::new(thing).is_err() {
            return None;
        }
        let parsed = match (levels.next()?, levels.next(), levels.next(), levels.next()) {
            ("notify", None, None, None) => Self::Notify { thing },
            ("notify-next", None, None, None) => Self::NotifyNext { thing },
            ("get", Some(kind), None, None) => {
                Self::reply(thing, None, RequestKind::GetPending, kind)?
            }
            ("start-next", Some(kind), None, None) => {
                Self::reply(thing, None, RequestKind::StartNext, kind)?
            }
            (job, Some("get"), Some(kind), None) if is_job_level(job, true) => {
                Self::reply(thing, Some(job), RequestKind::Describe, kind)?
            }
            (job, Some("update"), Some(kind), None) if is_job_level(job, false) => {
                Self::reply(thing, Some(job), RequestKind::Update, kind)?
            }
            _ => return None,
        };
        if levels.next().is_some() {
            return None;
        }
        Some(parsed)
    }

    fn reply(
        thing: &'a str,
        job: Option<&'a str>,
        request: RequestKind,
        kind: &str,
    ) -> Option<Self> {
        let kind = match kind {
            "accepted" => ReplyKind::Accepted,
            "rejected" => ReplyKind::Rejected,
            _ => return None,
        };
        Some(Self::Reply {
            thing,
            job,
            request,
            kind,
        })
    }

    /// The thing the topic belongs to.
    pub fn thing(&self) -> &'a str {
        match *self {
            Self::Notify { thing } | Self::NotifyNext { thing } | Self::Reply { thing, .. } => {
                thing
            }
        }
    }
}

fn is_job_level(level: &str, next_allowed: bool) -> bool {
    (next_allowed && level == NEXT_JOB) || JobId::new(level).is_ok()
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

    /// The request topic of `request`; `job` is needed for Describe and Update.
    pub(crate) fn request(&self, request: RequestKind, job: Option<&str>) -> String {
        match (request, job) {
            (RequestKind::GetPending, _) => self.with("get"),
            (RequestKind::StartNext, _) => self.with("start-next"),
            (RequestKind::Describe, job) => self.with(&format!("{}/get", job.unwrap_or(NEXT_JOB))),
            (RequestKind::Update, job) => self.with(&format!("{}/update", job.unwrap_or(NEXT_JOB))),
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

/// Builds the request topic for `thing` (a public helper for ports, tools and simulators).
pub fn request_topic(thing: &ThingName, request: RequestKind, job: Option<&JobId>) -> String {
    ThingTopics::new(thing).request(request, job.map(JobId::as_str))
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
            t.request(RequestKind::StartNext, None),
            "$aws/things/foobar/jobs/start-next"
        );
        assert_eq!(
            t.request(RequestKind::GetPending, None),
            "$aws/things/foobar/jobs/get"
        );
        assert_eq!(
            t.request(RequestKind::Describe, None),
            "$aws/things/foobar/jobs/$next/get"
        );
        assert_eq!(
            t.request(RequestKind::Describe, Some("1234")),
            "$aws/things/foobar/jobs/1234/get"
        );
        assert_eq!(
            t.request(RequestKind::Update, Some("1234")),
            "$aws/things/foobar/jobs/1234/update"
        );
        assert_eq!(t.filters()[5], "$aws/things/foobar/jobs/+/update/+");
    }

    #[test]
    fn the_c_library_matching_vectors_classify_exactly() {
        use ReplyKind::{Accepted, Rejected};
        use RequestKind::*;
        let reply = |job, request, kind| JobsTopic::Reply {
            thing: "foobar",
            job,
            request,
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
            "$aws/things/foobar/jobs/$next/update/accepted",
            "$aws/things/foobar/jobs/get",
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
                request: RequestKind::Describe,
                kind: ReplyKind::Accepted
            })
        );
        assert_eq!(
            JobsTopic::parse("$aws/things/foobar/jobs/get/update/rejected"),
            Some(JobsTopic::Reply {
                thing: "foobar",
                job: Some("get"),
                request: RequestKind::Update,
                kind: ReplyKind::Rejected
            })
        );
    }

    #[test]
    fn the_longest_topic_fits_the_broker_limits() {
        let thing = ThingName::new("t".repeat(128)).unwrap();
        let topic = format!(
            "{}/accepted",
            ThingTopics::new(&thing).request(RequestKind::Update, Some(&"j".repeat(64)))
        );
        assert_eq!(topic.len(), 226);
        assert_eq!(topic.matches('/').count(), 6);
        assert!(JobsTopic::parse(&topic).is_some());
    }
}
