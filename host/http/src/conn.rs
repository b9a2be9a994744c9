//! What a client connection may hold of the gateway: admission against the
//! global and per-address caps, and a watchdog that closes a connection that
//! is idle, dripping a request head, or not reading its response.
//!
//! Time is counted per connection from request events, not from bytes, so a
//! client cannot keep a connection by sending a byte now and then: a
//! connection with no request in flight is idle however much it sends, and
//! an HTTP/1.1 head that has started must be complete within the header
//! timeout.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use fhirgate_gateway::config::HttpLimits;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The timeouts a watchdog enforces, from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    header: u64,
    idle: u64,
    write: u64,
}

impl Timeouts {
    pub(crate) fn of(limits: &HttpLimits) -> Timeouts {
        Timeouts {
            header: limits.header_read_timeout_seconds * 1000,
            idle: limits.idle_timeout_seconds * 1000,
            write: limits.write_timeout_seconds * 1000,
        }
    }

    /// How often a watchdog looks: a quarter of the shortest timeout, so a
    /// connection overstays by at most that much.
    pub(crate) fn tick(&self) -> Duration {
        let shortest = self.header.min(self.idle).min(self.write);
        Duration::from_millis((shortest / 4).clamp(25, 1000))
    }
}

/// One connection's state, shared by its watchdog, its I/O and its requests.
pub(crate) struct ConnState {
    epoch: Instant,
    peer: IpAddr,
    /// Requests whose response has not been written out yet.
    in_flight: AtomicU32,
    /// When the last response finished, or the connection opened.
    idle_since: AtomicU64,
    /// When the first byte after `idle_since` arrived; 0 while none has.
    head_since: AtomicU64,
    /// Since when a write has been waiting for the client; 0 when none is.
    write_blocked_since: AtomicU64,
    /// The client opened with the HTTP/2 preface.
    http2: AtomicBool,
    /// Set once the first read has been looked at.
    sniffed: AtomicBool,
    close: Notify,
}

impl ConnState {
    fn now(&self) -> u64 {
        // +1: 0 means "not set" in the timestamps.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Why the connection should be closed now, if it should.
    pub(crate) fn expired(&self, t: &Timeouts) -> Option<&'static str> {
        let now = self.now();
        let blocked = self.write_blocked_since.load(Ordering::Acquire);
        if blocked != 0 && now.saturating_sub(blocked) > t.write {
            return Some("the client did not read its response");
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0 && !self.http2.load(Ordering::Relaxed) && now.saturating_sub(head) > t.header {
            return Some("the request head was not complete in time");
        }
        if now.saturating_sub(self.idle_since.load(Ordering::Acquire)) > t.idle {
            return Some("idle");
        }
        None
    }

    /// Resolves when admission chose this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.close.notified().await
    }

    /// A request has arrived; the returned guard ends it when dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.write_blocked_since.load(Ordering::Acquire) == 0
    }
}

/// A request in flight; dropped when its response has been written (it
/// travels in the response body) or abandoned.
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        let now = state.now();
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.idle_since.store(now, Ordering::Release);
            state.head_since.store(0, Ordering::Release);
        }
    }
}

/// A response body that keeps its request in flight until it is written.
pub(crate) struct Tracked<B> {
    body: B,
    _request: InFlight,
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, request: InFlight) -> Self {
        Tracked { body, _request: request }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's transport, reporting to its [`ConnState`]: the first
/// bytes of each request head, and writes the client is not taking.
pub(crate) struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>) -> Self {
        Watched { inner, state }
    }

    fn wrote<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let blocked = &self.state.write_blocked_since;
        match &poll {
            Poll::Pending => {
                if blocked.load(Ordering::Relaxed) == 0 {
                    blocked.store(self.state.now(), Ordering::Release);
                }
            }
            Poll::Ready(_) => blocked.store(0, Ordering::Release),
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                let state = &self.state;
                if !state.sniffed.swap(true, Ordering::Relaxed) && read.starts_with(b"PRI ") {
                    state.http2.store(true, Ordering::Relaxed);
                }
                if state.in_flight.load(Ordering::Acquire) == 0 && state.head_since.load(Ordering::Acquire) == 0 {
                    state.head_since.store(state.now(), Ordering::Release);
                }
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which connections are open, by address, against the caps.
///
/// The count is of sockets held, so it stays under the descriptor budget:
/// a connection closed to make room counts until its socket is closed, and
/// the accept loop waits for that ([`Admission::room`]) instead of running
/// out of descriptors.
pub(crate) struct Admission {
    epoch: Instant,
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
    /// Signalled whenever a socket is given up.
    freed: Notify,
    /// When a refusal was last logged, so a flood logs once in a while.
    last_warning: AtomicU64,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    /// Sockets held, `closing` ones included.
    total: usize,
    /// Connections told to close to make room, not closed yet.
    closing: usize,
    by_address: HashMap<IpAddr, HashMap<u64, Arc<ConnState>>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerAddress,
    Total,
}

impl Admission {
    /// Caps from `limits`, the total one kept under three quarters of
    /// `descriptors` (the process's open-file limit).
    pub(crate) fn new(limits: &HttpLimits, descriptors: u64) -> Arc<Admission> {
        let budget = usize::try_from(descriptors / 4 * 3).unwrap_or(usize::MAX).max(16);
        let max_total = limits.max_connections.min(budget);
        if max_total < limits.max_connections {
            tracing::info!(
                configured = limits.max_connections,
                used = max_total,
                open_file_limit = descriptors,
                "connection cap lowered to fit the open-file limit"
            );
        }
        Arc::new(Admission {
            epoch: Instant::now(),
            max_total,
            max_per_address: limits.max_connections_per_address,
            open: Mutex::default(),
            freed: Notify::new(),
            last_warning: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when the next connection can be accepted: there is room
    /// under the cap, or none can be made (every connection is busy), in
    /// which case the next one is refused. At the cap, an idle connection
    /// of the address holding the most is closed to make room, and this
    /// waits until its socket is.
    pub(crate) async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut open = self.lock();
                if open.total < self.max_total {
                    return;
                }
                if open.closing == 0 && !open.evict_one() {
                    return;
                }
            }
            freed.await;
        }
    }

    /// Admits a connection from `peer`, or refuses it when its address or
    /// the gateway is at its cap.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refusal> {
        let mut open = self.lock();
        let refusal = if open.by_address.get(&peer).map_or(0, HashMap::len) >= self.max_per_address {
            Some(Refusal::PerAddress)
        } else if open.total >= self.max_total {
            Some(Refusal::Total)
        } else {
            None
        };
        if let Some(why) = refusal {
            drop(open);
            self.refused(peer, why);
            return Err(why);
        }
        let id = open.next_id;
        open.next_id += 1;
        let state = Arc::new(ConnState {
            epoch: self.epoch,
            peer,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            sniffed: AtomicBool::new(false),
            close: Notify::new(),
        });
        state.idle_since.store(state.now(), Ordering::Release);
        open.by_address.entry(peer).or_default().insert(id, state.clone());
        open.total += 1;
        Ok(Ticket { id, state, admission: self.clone() })
    }

    fn refused(&self, peer: IpAddr, why: Refusal) {
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self.last_warning.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            let cap = match why {
                Refusal::PerAddress => "limits.max_connections_per_address",
                Refusal::Total => "limits.max_connections",
            };
            tracing::warn!(%peer, cap, "connection refused: at the cap and none idle to close (logged once per 10 s)");
        }
    }

    /// Sockets held now.
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.lock().total
    }
}

impl Open {
    /// Tells the longest-idle connection of the address holding the most
    /// connections that has an idle one to close; false when none is idle.
    fn evict_one(&mut self) -> bool {
        let mut addresses: Vec<(usize, IpAddr)> = self.by_address.iter().map(|(a, c)| (c.len(), *a)).collect();
        addresses.sort_unstable_by_key(|a| std::cmp::Reverse(a.0));
        for (_, address) in addresses {
            let Some(conns) = self.by_address.get_mut(&address) else { continue };
            let victim = conns
                .iter()
                .filter(|(_, s)| s.is_idle())
                .min_by_key(|(_, s)| s.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            if let Some(id) = victim {
                if let Some(state) = conns.remove(&id) {
                    state.close.notify_one();
                }
                if conns.is_empty() {
                    self.by_address.remove(&address);
                }
                self.closing += 1;
                return true;
            }
        }
        false
    }
}

/// An admitted connection's place; dropping it (with the socket) frees it.
pub(crate) struct Ticket {
    id: u64,
    pub(crate) state: Arc<ConnState>,
    admission: Arc<Admission>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        let peer = self.state.peer;
        let listed = match open.by_address.get_mut(&peer) {
            Some(conns) => {
                let listed = conns.remove(&self.id).is_some();
                if conns.is_empty() {
                    open.by_address.remove(&peer);
                }
                listed
            }
            None => false,
        };
        if !listed {
            // Told to close to make room: it has now.
            open.closing -= 1;
        }
        open.total -= 1;
        drop(open);
        self.admission.freed.notify_one();
    }
}

/// The process's open-file limit, raised to its hard maximum first: the
/// default soft limit (often 1024) is far below what a gateway needs.
pub(crate) fn descriptor_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> HttpLimits {
        HttpLimits { max_connections: total, max_connections_per_address: per_address, ..HttpLimits::default() }
    }

    #[test]
    fn the_per_address_cap_refuses_only_that_address() {
        let admission = Admission::new(&limits(100, 2), 1 << 20);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let _t = (admission.admit(a).unwrap(), admission.admit(a).unwrap());
        assert_eq!(admission.admit(a).err(), Some(Refusal::PerAddress));
        assert!(admission.admit(b).is_ok());
    }

    #[tokio::test]
    async fn at_the_cap_an_idle_connection_of_the_busiest_address_makes_room() {
        let admission = Admission::new(&limits(3, 10), 1 << 20);
        let flood: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let mine = admission.admit(other).unwrap();
        let mut flooding: Vec<Ticket> = (0..2).map(|_| admission.admit(flood).unwrap()).collect();
        let _busy = flooding[1].state.request();
        // At the cap: the idle flood connection is told to close, not the
        // busy one nor the lone one, and room comes once it has.
        let room = tokio::spawn({
            let admission = admission.clone();
            async move { admission.room().await }
        });
        flooding[0].state.evicted().await;
        assert!(!room.is_finished());
        assert_eq!(admission.open_count(), 3);
        drop(flooding.remove(0));
        room.await.unwrap();
        let newcomer = admission.admit("127.0.0.4".parse().unwrap()).unwrap();
        assert_eq!(admission.open_count(), 3);
        assert!(!flooding[0].state.close.notified().now_or_never_ready());
        assert!(!mine.state.close.notified().now_or_never_ready());
        drop((flooding, mine, newcomer));
        assert_eq!(admission.open_count(), 0);
    }

    #[tokio::test]
    async fn with_none_idle_a_new_connection_is_refused() {
        let admission = Admission::new(&limits(1, 10), 1 << 20);
        let t = admission.admit("127.0.0.2".parse().unwrap()).unwrap();
        let _busy = t.state.request();
        admission.room().await;
        assert_eq!(admission.admit("127.0.0.3".parse().unwrap()).err(), Some(Refusal::Total));
    }

    #[test]
    fn the_cap_stays_under_the_descriptor_limit() {
        let admission = Admission::new(&limits(4096, 256), 256);
        assert_eq!(admission.max_total, 192);
    }

    #[test]
    fn a_dripped_head_expires_on_the_header_timeout_and_silence_on_the_idle_one() {
        let admission = Admission::new(&HttpLimits::default(), 1 << 20);
        let t = admission.admit("127.0.0.2".parse().unwrap()).unwrap();
        let timeouts = Timeouts { header: 10, idle: 10_000, write: 10_000 };
        assert_eq!(t.state.expired(&timeouts), None);
        t.state.head_since.store(t.state.now(), Ordering::Release);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.state.expired(&timeouts), Some("the request head was not complete in time"));
        let request = t.state.request();
        assert_eq!(t.state.expired(&timeouts), None);
        drop(request);
        let idle = Timeouts { header: 10_000, idle: 10, write: 10_000 };
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.state.expired(&idle), Some("idle"));
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
