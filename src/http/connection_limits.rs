//! Bounds on connections, so that clients who open sockets and then say nothing — or say it
//! very slowly — cannot hold the server's connection slots (`OPENTIME_MAX_CONNECTIONS`).
//!
//! Every open of every email reaches this server from anyone on the internet, so a connection
//! must earn its slot:
//!
//! - **Header timeout** (`OPENTIME_HEADER_TIMEOUT_MS`): a request header must be complete
//!   within it, counted from the accept for a connection's first request (a silent socket is
//!   closed too) and from the first byte of each later request.
//! - **Idle timeout** (`OPENTIME_KEEPALIVE_TIMEOUT_SECS`): a connection with no request in
//!   progress — HTTP/1.1 keep-alive between requests, an HTTP/2 connection without streams — is
//!   closed after it. An answer the client does not read is also dropped once its write has
//!   stalled past this bound.
//! - **Per-address cap** (`OPENTIME_MAX_CONNECTIONS_PER_ADDRESS`): one client address (IPv6:
//!   one /64, which any single host can fill with addresses) holds at most so many connections;
//!   more are closed as soon as they are accepted.
//!
//! Both timeouts live in [`Guarded`], a wrapper around the socket, not in hyper: hyper 1's own
//! HTTP/1 `header_read_timeout` starts when the server begins waiting for a request, so it
//! would also cut idle keep-alive connections at the header timeout; it does not cover the
//! protocol detection of `hyper_util`'s auto builder (a silent socket waits there forever) nor
//! HTTP/2. The wrapper knows whether a request is in progress from [`Activity`], which the
//! service marks ([`Activity::request_started`]); when a bound passes, a read returns
//! end-of-file, and hyper closes the connection as if the client had gone. Request bodies are
//! the handlers' business (the ingest API bounds its own body read); bytes of an unread body
//! that arrive after the answer count as a new request's header.
//!
//! Each connection closed here is counted in `opentime_connections_closed_total{reason}`.

use crate::metrics::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two time bounds of a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// Longest time to send a complete request header.
    pub(super) header: Duration,
    /// Longest time with no request in progress.
    pub(super) idle: Duration,
}

/// What one connection is doing, shared by its socket ([`Guarded`]) and its requests.
pub(super) struct Activity {
    timeouts: Timeouts,
    state: Mutex<ActivityState>,
}

struct ActivityState {
    /// Requests handed to the service and not yet answered (HTTP/2: several at once).
    in_flight: usize,
    /// When the last request was answered (or the connection accepted).
    idle_since: Instant,
    /// Since when a request is arriving that the service has not seen yet: the accept for the
    /// first request, else the first byte read while idle.
    arriving_since: Option<Instant>,
    /// The socket's task, woken when the last request is answered (its deadline starts then).
    waker: Option<Waker>,
}

impl Activity {
    pub(super) fn new(timeouts: Timeouts) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            timeouts,
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: now,
                arriving_since: Some(now),
                waker: None,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a request as in progress until the returned guard is dropped (call it when the
    /// service is called, not when its future first runs: the socket may be read in between).
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.arriving_since = None;
        InFlight(Arc::clone(self))
    }

    fn bytes_read(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.arriving_since.is_none() {
            state.arriving_since = Some(Instant::now());
        }
    }

    /// When the connection is to be closed if nothing happens before, and why; `None` while
    /// a request is in progress. Remembers `waker` to re-check when that request is answered.
    fn deadline(&self, waker: &Waker) -> Option<(Instant, &'static str)> {
        let mut state = self.state();
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.arriving_since {
            Some(since) => (since + self.timeouts.header, "header-timeout"),
            None => (state.idle_since + self.timeouts.idle, "idle-timeout"),
        })
    }
}

/// A request in progress on its connection; dropped when the service has answered.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }
}

/// A socket that ends (reads return end-of-file) once its connection's [`Activity`] says it
/// has been silent, slow or idle for too long.
pub(super) struct Guarded<S> {
    inner: S,
    activity: Arc<Activity>,
    metrics: Arc<Metrics>,
    /// The timer of the current deadline, created on the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    /// Why the connection was closed, once it was.
    closed: Option<&'static str>,
}

impl<S> Guarded<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            activity,
            metrics,
            sleep: None,
            armed: None,
            closed: None,
        }
    }

    /// Ready (with the reason) once the deadline has passed; otherwise arranges a wake-up
    /// for it. The deadline moves later with every answered request, so the timer is only
    /// moved when the deadline comes earlier; a timer that fires before a deadline that has
    /// since moved later is set again — one timer update per idle period, not per request.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<&'static str> {
        let Some((deadline, reason)) = self.activity.deadline(cx.waker()) else {
            return Poll::Pending;
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if self.armed.is_none_or(|armed| deadline < armed) {
            sleep.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.armed.is_some_and(|armed| armed >= deadline) {
                return Poll::Ready(reason);
            }
            // Fired for an older, earlier deadline: wait for the current one.
            sleep.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
    }

    fn close(&mut self, reason: &'static str) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.metrics.connection_closed(reason);
        }
    }

    /// A write the client does not take: an error once the deadline has passed.
    fn poll_write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.closed.is_none() {
            if self.poll_deadline(cx).is_pending() {
                return Poll::Pending;
            }
            self.close("write-timeout");
        }
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed.is_some() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Ready(reason) => {
                    // Nothing filled: end-of-file, and hyper closes the connection.
                    this.close(reason);
                    Poll::Ready(Ok(()))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.poll_write_stalled(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, data) {
            Poll::Pending => this.poll_write_stalled(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Live connections per client address, at most `cap` each (0 = no cap).
pub(super) struct AddressSlots {
    cap: usize,
    live: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressSlots {
    pub(super) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            live: Mutex::new(HashMap::new()),
        })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one connection from `peer`, held until dropped; `None` when the address
    /// already holds `cap` connections.
    pub(super) fn take(self: &Arc<Self>, peer: IpAddr) -> Option<AddressSlot> {
        if self.cap == 0 {
            return Some(AddressSlot {
                slots: Arc::clone(self),
                key: None,
            });
        }
        let key = address_key(peer);
        let mut live = self.live();
        let count = live.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: Arc::clone(self),
            key: Some(key),
        })
    }

    /// Addresses holding at least one connection.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.live().len()
    }
}

/// One connection's place in its address's count.
pub(super) struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: Option<IpAddr>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut live = self.slots.live();
        if let Some(count) = live.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                live.remove(&key);
            }
        }
    }
}

/// What a client address counts as: an IPv4 address (also when IPv4-mapped), an IPv6 /64.
fn address_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !0u128 << 64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_cap_connections_until_one_ends() {
        let slots = AddressSlots::new(2);
        let first = slots.take(ip("203.0.113.7")).unwrap();
        let _second = slots.take(ip("203.0.113.7")).unwrap();
        assert!(slots.take(ip("203.0.113.7")).is_none());
        let _other = slots.take(ip("203.0.113.8")).unwrap();
        drop(first);
        assert!(slots.take(ip("203.0.113.7")).is_some());
    }

    #[test]
    fn ended_connections_leave_no_entry() {
        let slots = AddressSlots::new(2);
        let a = slots.take(ip("203.0.113.7")).unwrap();
        let b = slots.take(ip("2001:db8::1")).unwrap();
        assert_eq!(slots.addresses(), 2);
        drop((a, b));
        assert_eq!(slots.addresses(), 0);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_mapped_ipv4_is_ipv4() {
        let slots = AddressSlots::new(1);
        let _a = slots.take(ip("2001:db8:1:2::1")).unwrap();
        assert!(slots.take(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(slots.take(ip("2001:db8:1:3::1")).is_some());
        let _v4 = slots.take(ip("198.51.100.1")).unwrap();
        assert!(slots.take(ip("::ffff:198.51.100.1")).is_none());
    }

    #[test]
    fn cap_zero_is_no_cap() {
        let slots = AddressSlots::new(0);
        let held: Vec<_> = (0..100).map(|_| slots.take(ip("203.0.113.7"))).collect();
        assert!(held.iter().all(Option::is_some));
        assert_eq!(slots.addresses(), 0);
    }
}
