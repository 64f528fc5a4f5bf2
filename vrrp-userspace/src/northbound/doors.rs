//! Limits shared by the daemon's doors (the control socket and the metrics endpoint): a
//! bounded number of open connections, the idle ones evicted first, and a pause on accept
//! errors. A flood of connections that never send a request (5,000 of them, or a scanner)
//! costs a bounded number of descriptors and tasks, and a real client, which sends its request
//! at once, still gets in: when every slot is taken, the connection that has waited longest
//! without a request makes room for the new one.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::task::AbortHandle;
use tracing::warn;

/// After an accept error (EMFILE, ENFILE, ENOBUFS), the accept loop waits this long instead of
/// spinning on the error.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Open connections of one door.
#[derive(Clone)]
pub struct Gate {
    name: &'static str,
    cap: usize,
    state: Arc<Mutex<GateState>>,
}

#[derive(Default)]
struct GateState {
    next_id: u64,
    open: Vec<u64>,
    /// Connections that have not sent their request yet, oldest first.
    idle: VecDeque<(u64, Option<AbortHandle>)>,
    evicted: u64,
    refused: u64,
}

/// One admitted connection; dropping it frees the slot.
pub struct Ticket {
    id: u64,
    state: Arc<Mutex<GateState>>,
}

impl Gate {
    pub fn new(name: &'static str, cap: usize) -> Self {
        Self {
            name,
            cap: cap.max(1),
            state: Arc::default(),
        }
    }

    /// Runs `work` for a new connection if a slot is free or an idle connection can give its
    /// own up; otherwise (every slot busy with a request) returns false and the caller drops
    /// the connection, which closes it.
    pub fn admit<F>(&self, work: impl FnOnce(Ticket) -> F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.open.len() >= self.cap {
            let Some((victim, handle)) = st.idle.pop_front() else {
                st.refused += 1;
                if st.refused.is_power_of_two() {
                    warn!(
                        "{}: {} connections busy; refused {} so far",
                        self.name, self.cap, st.refused
                    );
                }
                return false;
            };
            st.open.retain(|&id| id != victim);
            if let Some(h) = handle {
                h.abort();
            }
            st.evicted += 1;
            if st.evicted.is_power_of_two() {
                warn!(
                    "{}: {} connections open; closed {} idle ones to make room so far",
                    self.name, self.cap, st.evicted
                );
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.open.push(id);
        st.idle.push_back((id, None));
        drop(st);
        let ticket = Ticket {
            id,
            state: Arc::clone(&self.state),
        };
        let handle = tokio::spawn(work(ticket)).abort_handle();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Unless it has sent its request (or ended) already.
        if let Some(slot) = st.idle.iter_mut().find(|(i, _)| *i == id) {
            slot.1 = Some(handle);
        }
        true
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .len()
    }
}

impl Ticket {
    /// The client sent its request: it is no longer evictable.
    pub fn engaged(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.idle.retain(|(i, _)| *i != self.id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.idle.retain(|(i, _)| *i != self.id);
        st.open.retain(|&i| i != self.id);
    }
}

/// Logs an accept error (rarely) and pauses, so that running out of descriptors does not
/// turn the accept loop into a busy loop.
pub async fn accept_failed(door: &str, e: &std::io::Error, count: &mut u64) {
    *count += 1;
    if count.is_power_of_two() {
        warn!("{door}: accept failed ({e}); {count} times so far, pausing each time");
    }
    tokio::time::sleep(ACCEPT_PAUSE).await;
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: the doors, the sockets of many
/// instances and the scripts' pipes all take descriptors, and the default soft limit (1024)
/// is what a connection flood would exhaust first. Returns the limit in force.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                warn!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            warn!("cannot read RLIMIT_NOFILE: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap holds; an idle connection makes room for a new one; a busy one does not.
    #[tokio::test]
    async fn idle_connections_are_evicted_busy_ones_are_not() {
        let gate = Gate::new("test", 2);
        let (busy_tx, busy_rx) = tokio::sync::oneshot::channel::<Ticket>();
        assert!(gate.admit(|t| async move {
            t.engaged();
            let _ = busy_tx.send(t);
        }));
        let busy = busy_rx.await.expect("busy ticket");
        assert!(gate.admit(|t| async move {
            let _t = t;
            std::future::pending::<()>().await;
        }));
        assert_eq!(gate.open(), 2);
        // Full: the idle one goes, the new one comes in.
        assert!(gate.admit(|t| async move {
            t.engaged();
            let _t = t;
            std::future::pending::<()>().await;
        }));
        tokio::task::yield_now().await;
        assert_eq!(gate.open(), 2);
        // Full with busy connections only: refused.
        assert!(!gate.admit(|_| async {}));
        drop(busy);
        assert_eq!(gate.open(), 1);
        assert!(gate.admit(|_| async {}));
    }
}
