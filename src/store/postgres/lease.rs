//! Who leads: one row of `opsgate_leader` holds the leader's name, its epoch (the fencing
//! token, one more for every new leader) and when its lease ends, by the database's clock
//! (`clock_timestamp()`), never a replica's, so replicas with skewed clocks agree.
//!
//! A standby tries to take the row every [`Lease::poll`]: it succeeds only once the lease
//! has ended, and two standbys trying at once are serialised by the row's lock, so exactly
//! one of them gets the next epoch. The leader renews the lease on a connection of its own
//! every third of the lease; every commit checks, in its own transaction, that the epoch
//! is still the leader's and the lease has not ended (see `PgStore`), so a leader that
//! was paused or cut off cannot commit once another may lead. PostgreSQL's row locks and
//! transactions are the whole of the coordination.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;

use super::connect::{explain, Url};

/// How the lease is held, and by whom.
#[derive(Clone, Debug)]
pub struct Lease {
    pub url: Url,
    /// This replica's name, shown to the others (host name and process ID).
    pub replica: String,
    pub duration: Duration,
}

/// What the lease did, for logs, metrics and the process: told by the standby's wait and
/// by the leader's renewals.
pub trait LeaseEvents: Send + Sync {
    /// A renewal failed (the database did not answer); it is tried again until the lease
    /// would have ended.
    fn renewal_failed(&self, why: &str);
    /// The lease is lost: another replica may lead now. Nothing more may be committed or
    /// said; the process must stop taking input and end.
    fn lost(&self, why: &str);
}

/// This replica leads, from `epoch` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead {
    pub epoch: i64,
    /// Just before the lease was taken: it ends no later than this plus its length.
    pub taken: Instant,
    /// The replica whose lease this one took over, if any led before.
    pub previous: Option<String>,
}

/// Until when the lease surely holds by this replica's own monotonic clock: the start of
/// the last renewal that succeeded (or of the take) plus the lease's length, which is never
/// later than the expiry the database wrote (its clock read it after that start). A
/// replica that was paused (SIGSTOP, a stalled VM) finds it passed as soon as it runs
/// again, before its lease thread has told anyone: what it would still say in chat is
/// held back by [`Validity::holds`].
#[derive(Debug)]
pub struct Validity {
    base: Instant,
    until_ns: AtomicU64,
}

impl Validity {
    fn new(until: Instant) -> Validity {
        let base = Instant::now();
        let validity = Validity {
            base,
            until_ns: AtomicU64::new(0),
        };
        validity.extend(until);
        validity
    }

    fn extend(&self, until: Instant) {
        let ns = until.saturating_duration_since(self.base).as_nanos() as u64;
        self.until_ns.fetch_max(ns, Ordering::SeqCst);
    }

    /// Whether the lease surely still holds.
    pub fn holds(&self) -> bool {
        (self.base.elapsed().as_nanos() as u64) < self.until_ns.load(Ordering::SeqCst)
    }
}

/// A lease's length as PostgreSQL's interval argument.
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Lease {
    /// How often a standby tries to take the lease.
    pub fn poll(&self) -> Duration {
        (self.duration / 5).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// How often the leader renews.
    fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    fn connect(&self, purpose: &str) -> Result<Client, String> {
        self.url
            .connect(purpose, self.duration.max(Duration::from_secs(2)))
    }

    /// Waits (for ever, trying every [`Lease::poll`]) until this replica leads. A database
    /// that cannot be reached is tried again; `waiting` is told each time it cannot.
    pub fn wait_to_lead(&self, waiting: &dyn Fn(&str)) -> Lead {
        let mut client: Option<Client> = None;
        loop {
            let attempt = match client.as_mut() {
                Some(c) => self.try_take(c),
                None => match self.connect("standby") {
                    Ok(c) => {
                        client = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(Some(lead)) => return lead,
                Ok(None) => {}
                Err(e) => {
                    waiting(&e);
                    client = None;
                }
            }
            std::thread::sleep(self.poll());
        }
    }

    /// Takes the lease if it has ended (or was released). One transaction: the row is
    /// locked while it is read and written, so of two standbys only one takes it.
    pub fn try_take(&self, client: &mut Client) -> Result<Option<Lead>, String> {
        let taken = Instant::now();
        let failed = |e: postgres::Error| format!("cannot take the lease: {}", explain(&e));
        let mut tx = client.transaction().map_err(failed)?;
        let row = tx
            .query_one(
                "SELECT holder, epoch, expires_at <= clock_timestamp()
                 FROM opsgate_leader WHERE id = 1 FOR UPDATE",
                &[],
            )
            .map_err(failed)?;
        let (holder, epoch, free): (String, i64, bool) = (row.get(0), row.get(1), row.get(2));
        if !free {
            return Ok(None);
        }
        tx.execute(
            "UPDATE opsgate_leader
             SET holder = $1, epoch = epoch + 1,
                 expires_at = clock_timestamp() + make_interval(secs => $2)
             WHERE id = 1",
            &[&self.replica, &seconds(self.duration)],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(Some(Lead {
            epoch: epoch + 1,
            taken,
            previous: (!holder.is_empty()).then_some(holder),
        }))
    }

    /// Renews the lease of `epoch` on a thread of its own until `released` is set, telling
    /// `events`. A renewal that finds the lease ended or taken is a loss at once; one that
    /// cannot reach the database is retried until the lease would have ended, counted
    /// from the last renewal that succeeded, and is then a loss. Returns how long the lease
    /// surely holds (kept up to date by the renewals) and the renewals' thread.
    pub fn keep(
        &self,
        lead: &Lead,
        released: Arc<AtomicBool>,
        events: Arc<dyn LeaseEvents>,
    ) -> std::io::Result<(Arc<Validity>, std::thread::JoinHandle<()>)> {
        let lease = self.clone();
        let (epoch, taken) = (lead.epoch, lead.taken);
        let validity = Arc::new(Validity::new(taken + self.duration));
        let kept = validity.clone();
        let thread = std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || {
                lease.renew_until_lost(epoch, taken, &released, events.as_ref(), &kept)
            })?;
        Ok((validity, thread))
    }

    fn renew_until_lost(
        &self,
        epoch: i64,
        taken: Instant,
        released: &AtomicBool,
        events: &dyn LeaseEvents,
        validity: &Validity,
    ) {
        let mut client: Option<Client> = None;
        // The lease cannot end later than the last renewal's start plus its length.
        let mut renewed = taken;
        let mut wait = self.renew_every();
        loop {
            std::thread::sleep(wait);
            if released.load(Ordering::SeqCst) {
                return;
            }
            let attempt = Instant::now();
            let outcome = match client.as_mut() {
                Some(c) => self.renew(c, epoch),
                None => self.connect("lease").and_then(|mut c| {
                    let renewed = self.renew(&mut c, epoch);
                    client = Some(c);
                    renewed
                }),
            };
            if released.load(Ordering::SeqCst) {
                return;
            }
            match outcome {
                Ok(true) => {
                    renewed = attempt;
                    validity.extend(attempt + self.duration);
                    wait = self.renew_every();
                }
                Ok(false) => {
                    events.lost(&format!(
                        "the lease of epoch {epoch} has ended or another replica took it over"
                    ));
                    return;
                }
                Err(why) => {
                    client = None;
                    wait = self.poll();
                    events.renewal_failed(&why);
                    if renewed.elapsed() >= self.duration {
                        events.lost(&format!(
                            "the lease of epoch {epoch} could not be renewed for {}s ({why})",
                            self.duration.as_secs_f64()
                        ));
                        return;
                    }
                }
            }
        }
    }

    /// Extends the lease of `epoch` if it is still this replica's and has not ended.
    fn renew(&self, client: &mut Client, epoch: i64) -> Result<bool, String> {
        let renewed = client
            .execute(
                "UPDATE opsgate_leader
                 SET expires_at = clock_timestamp() + make_interval(secs => $2)
                 WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()",
                &[&epoch, &seconds(self.duration)],
            )
            .map_err(|e| format!("cannot renew the lease: {}", explain(&e)))?;
        Ok(renewed == 1)
    }
}

/// Ends the lease of `epoch` at once, so a standby takes over without waiting for it to
/// run out: for a clean stop, once nothing more will be committed.
pub fn release(client: &mut Client, epoch: i64) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE opsgate_leader SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1",
        &[&epoch],
    )?;
    Ok(())
}
