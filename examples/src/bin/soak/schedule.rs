//! The chaos schedule: broker kills and freezes, evenly interleaved, with the jobs created in
//! waves over the first half of them, device reboots spread among them, and bursts of refused
//! requests.

use std::error::Error;
use std::thread;

use jobs_mock::service::api::{CreateJob, PresignedUrlConfig};
use jobs_mock::service::{Simulator, TargetSelection};

use crate::args::Args;
use crate::chaos::{Broker, OutageKind, Outages};
use crate::device::Device;
use crate::dice::Dice;
use crate::plan::Plan;

/// The role AWS IoT would read the firmware bucket with (OTA mode; the emulator only checks
/// that there is one).
const PRESIGN_ROLE: &str = "arn:aws:iam::123456789012:role/soak-firmware-reader";

/// What the schedule acts on.
pub(crate) struct Chaos<'a> {
    pub(crate) args: &'a Args,
    pub(crate) plan: &'a Plan,
    pub(crate) simulator: &'a Simulator,
    pub(crate) devices: &'a [Device],
    pub(crate) outages: &'a Outages,
}

/// Runs the whole schedule; returns how many requests were answered `RequestThrottled` and
/// `InternalError` on purpose.
///
/// # Errors
/// When a job cannot be created or the broker cannot be signalled or restarted.
pub(crate) fn run(
    chaos: &Chaos<'_>,
    broker: &mut Broker,
    dice: &mut Dice,
) -> Result<(usize, usize), Box<dyn Error>> {
    let Chaos {
        args,
        plan,
        simulator,
        devices,
        outages,
    } = *chaos;
    let reboot = |dice: &mut Dice| {
        let device = usize::try_from(dice.below(devices.len() as u64)).unwrap_or(0);
        if let Some(device) = devices.get(device) {
            device.reboot();
        }
    };
    // Kills and freezes interleaved evenly.
    let cycles = args.restarts + args.freezes;
    let kinds: Vec<OutageKind> = (0..cycles)
        .map(|i| {
            if (i + 1) * args.freezes / cycles > i * args.freezes / cycles {
                OutageKind::Freeze
            } else {
                OutageKind::Kill
            }
        })
        .collect();
    let first = if cycles == 0 {
        args.jobs
    } else {
        args.jobs / 4
    };
    let creating = cycles.div_ceil(2).max(1);
    let mut created = 0;
    let mut create = |upto: usize| -> Result<(), Box<dyn Error>> {
        for job in plan.jobs.get(created..upto).unwrap_or_default() {
            let mut request = CreateJob::new(
                job.id.clone(),
                &job.document(created, plan.file.as_ref())?,
                vec![crate::plan::thing_arn(&crate::plan::thing_name(job.device))],
            );
            if plan.file.is_some() {
                // Non-exhaustive: built as the API reads it.
                let config: PresignedUrlConfig = serde_json::from_value(serde_json::json!({
                    "roleArn": PRESIGN_ROLE,
                    "expiresInSec": crate::ota::EXPIRES_IN_SEC,
                }))?;
                request.presigned_url_config = Some(config);
            }
            if job.rerun {
                request.target_selection = Some(TargetSelection::Continuous);
            }
            if let Some((code, times)) = &job.refused {
                simulator.refuse_updates(&job.id, code.clone(), Some(*times));
            }
            simulator.call(request)?;
            created += 1;
        }
        Ok(())
    };
    create(first)?;
    let mut reboots_done = 0;
    // Requests answered RequestThrottled and InternalError on purpose.
    let mut faults = (0, 0);
    for (i, kind) in kinds.iter().enumerate() {
        if i < creating {
            create(first + (args.jobs - first) * (i + 1) / creating)?;
        }
        // Bursts of refused requests (any request of any device): retried, never visible in
        // the outcome.
        if dice.chance(30) {
            let n = 1 + usize::try_from(dice.below(5)).unwrap_or(0);
            if dice.chance(50) {
                simulator.throttle_next_requests(n);
                faults.0 += n;
            } else {
                simulator.fail_next_requests(n);
                faults.1 += n;
            }
        }
        // After a kill the devices first reconnect (Paho retries after 1 s).
        let mut up = match i.checked_sub(1).and_then(|p| kinds.get(p)) {
            Some(OutageKind::Kill) => dice.millis(2000, 3000),
            _ => dice.millis(800, 1600),
        };
        let reboots_due = args.reboots * (i + 1) / cycles - reboots_done;
        for _ in 0..reboots_due {
            let part = dice.millis(0, u64::try_from(up.as_millis()).unwrap_or(0));
            thread::sleep(part);
            up = up.saturating_sub(part);
            reboot(dice);
            reboots_done += 1;
        }
        thread::sleep(up);
        let length = match kind {
            OutageKind::Kill => dice.millis(300, 1200),
            OutageKind::Freeze => dice.millis(300, 3000),
        };
        broker.outage(*kind, length, outages)?;
    }
    create(args.jobs)?;
    while reboots_done < args.reboots {
        thread::sleep(dice.millis(100, 500));
        reboot(dice);
        reboots_done += 1;
    }
    outages.finish();
    Ok(faults)
}
