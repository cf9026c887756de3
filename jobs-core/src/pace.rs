//! Pacing of a connection's publishes: a token bucket for the rate ([`PublishRate`]) and a cap
//! on QoS 1 publishes waiting for their PUBACK. Both wait within the call's deadline: a call
//! whose deadline passes while it waits publishes nothing and times out.
//!
//! A broker such as AWS IoT Core counts what it sends a connection too. A request's token
//! pays for the request and its reply; every other message the connection receives (events,
//! replies nobody waits for) is charged half a token when it arrives, so that events make
//! the next requests wait instead of pushing the connection over the broker's limit.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How fast a [`Client`](crate::Client) may publish: a token bucket that refills `per_second`
/// tokens a second up to `burst`; each request takes one. See
/// [`ClientBuilder::publish_rate`](crate::ClientBuilder::publish_rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishRate {
    per_second: f64,
    burst: u32,
}

impl PublishRate {
    /// `per_second` publishes a second on average, with bursts of up to `burst` at once.
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) refuses a rate that is not a
    /// positive, finite number and a burst of zero.
    pub fn per_second(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// The rate the client takes for a broker whose limit is `limit` publishes a second,
    /// inbound and outbound together (AWS IoT Core: 100): 40 % of it for requests, with bursts
    /// of 5 %. A request's token pays for the request and its reply; every other message the
    /// connection receives (an event, a reply nobody waits for) takes half a token. So in any
    /// one second requests, replies and events together stay within 90 % of the limit, however
    /// the broker measures its second, as long as events alone stay under 80 % of it.
    pub fn within(limit: u32) -> Self {
        Self::per_second(f64::from(limit) * 0.4, (limit / 20).max(1))
    }

    /// Publishes a second, on average.
    pub fn rate(&self) -> f64 {
        self.per_second
    }

    /// Publishes that may go at once after a pause.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.per_second.is_finite() && self.per_second > 0.0 && self.burst > 0
    }
}

/// What a received message no request paid for costs, in tokens (a token pays for a request
/// and its reply: two publishes).
const INBOUND_COST: f64 = 0.5;

#[derive(Debug)]
struct Bucket {
    /// Tokens available at `at` (negative: promised to callers waiting for them).
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct InFlight {
    count: usize,
}

/// A connection's publish pacing.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: Option<PublishRate>,
    bucket: Mutex<Bucket>,
    max_in_flight: Option<usize>,
    in_flight: Mutex<InFlight>,
    freed: Condvar,
}

/// A publish allowed to go: holds its in-flight slot until dropped (after the PUBACK).
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    pace: &'a Pace,
    counted: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.pace.in_flight.lock().count -= 1;
            self.pace.freed.notify_one();
        }
    }
}

impl Pace {
    pub(crate) fn new(rate: Option<PublishRate>, max_in_flight: Option<usize>) -> Self {
        let burst = rate.map_or(0.0, |rate| f64::from(rate.burst));
        Self {
            rate,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
            max_in_flight,
            in_flight: Mutex::new(InFlight { count: 0 }),
            freed: Condvar::new(),
        }
    }

    /// Waits for a token and an in-flight slot, at most until `deadline`. `None` when the
    /// deadline would pass first: the caller must publish nothing (no token is taken then).
    pub(crate) fn admit(&self, deadline: Instant) -> Option<Permit<'_>> {
        let counted = match self.max_in_flight {
            Some(max) => {
                let mut in_flight = self.in_flight.lock();
                while in_flight.count >= max {
                    if self.freed.wait_until(&mut in_flight, deadline).timed_out()
                        && in_flight.count >= max
                    {
                        return None;
                    }
                }
                in_flight.count += 1;
                true
            }
            None => false,
        };
        let permit = Permit {
            pace: self,
            counted,
        };
        let ready = self.take_token(deadline)?;
        let now = Instant::now();
        if ready > now {
            std::thread::sleep(ready - now);
        }
        Some(permit)
    }

    /// Charges the bucket half a token for a message the connection received that no request
    /// paid for (an event, a reply nobody waits for): requests wait for it. The debt is
    /// bounded by one second of tokens (a broker's window is a second; older messages no
    /// longer count).
    pub(crate) fn charge_inbound(&self) {
        let Some(rate) = self.rate else {
            return;
        };
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        bucket.at = now;
        bucket.tokens = (bucket.tokens - INBOUND_COST).max(bucket.tokens.min(-rate.per_second));
    }

    /// Takes a token (possibly one that becomes available later) and returns when it may be
    /// used, or `None` if that is after `deadline` (nothing is taken then).
    fn take_token(&self, deadline: Instant) -> Option<Instant> {
        let Some(rate) = self.rate else {
            return Some(Instant::now());
        };
        let mut bucket = self.bucket.lock();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        bucket.at = now;
        let wait = if bucket.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / rate.per_second)
        };
        let ready = now.checked_add(wait)?;
        if ready > deadline {
            return None;
        }
        bucket.tokens -= 1.0;
        Some(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_for_a_broker_limit_leaves_room_for_replies_and_events() {
        let rate = PublishRate::within(100);
        assert_eq!((rate.rate(), rate.burst()), (40.0, 5));
        assert!(rate.is_valid());
        assert!(!PublishRate::per_second(0.0, 1).is_valid());
        assert!(!PublishRate::per_second(f64::NAN, 1).is_valid());
        assert!(!PublishRate::per_second(1.0, 0).is_valid());
    }

    #[test]
    fn tokens_beyond_the_burst_are_promised_in_order_and_refused_past_the_deadline() {
        let pace = Pace::new(Some(PublishRate::per_second(10.0, 2)), None);
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        // The burst goes at once.
        assert!(pace.take_token(far).unwrap() <= Instant::now());
        assert!(pace.take_token(far).unwrap() <= Instant::now());
        // The third waits about 100 ms, the fourth about 200 ms.
        let third = pace.take_token(far).unwrap();
        let fourth = pace.take_token(far).unwrap();
        assert!(third > now + Duration::from_millis(50), "{:?}", third - now);
        assert!(fourth >= third + Duration::from_millis(90));
        // A call whose deadline comes before its token takes nothing.
        assert!(pace.take_token(now + Duration::from_millis(10)).is_none());
        let fifth = pace.take_token(far).unwrap();
        assert!(fifth >= fourth + Duration::from_millis(90));
    }

    #[test]
    fn received_messages_no_request_paid_for_make_requests_wait_up_to_a_second() {
        let pace = Pace::new(Some(PublishRate::per_second(10.0, 2)), None);
        let far = Instant::now() + Duration::from_secs(60);
        // Four events take the burst's two tokens.
        for _ in 0..4 {
            pace.charge_inbound();
        }
        let now = Instant::now();
        let next = pace.take_token(far).unwrap();
        assert!(next >= now + Duration::from_millis(90), "{:?}", next - now);
        // A flood leaves a debt of at most one second of tokens.
        for _ in 0..1000 {
            pace.charge_inbound();
        }
        let now = Instant::now();
        let next = pace.take_token(far).unwrap();
        assert!(
            next <= now + Duration::from_millis(1300),
            "{:?}",
            next - now
        );
        assert!(next >= now + Duration::from_millis(900), "{:?}", next - now);
        // Unpaced: nothing to charge.
        Pace::new(None, None).charge_inbound();
    }

    #[test]
    fn in_flight_publishes_are_capped_and_a_call_that_cannot_get_a_slot_times_out() {
        let pace = Pace::new(None, Some(1));
        let first = pace.admit(Instant::now() + Duration::from_secs(1)).unwrap();
        assert!(pace.admit(Instant::now()).is_none());
        drop(first);
        assert!(pace.admit(Instant::now()).is_some());
    }
}
