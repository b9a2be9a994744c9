//! An HTTP/1.1 load generator for the comparative benchmark: keep-alive
//! connections over loopback, each request timed into an HDR histogram.
//!
//! - [`closed_loop`]: every connection sends its next request as soon as the
//!   last is answered — the most a system serves (saturation).
//! - [`open_loop`]: requests are due at a constant total rate, spread over
//!   the connections (each connection's schedule offset from the others, as
//!   wrk2 does). A request the system held up (its connection still busy
//!   with the previous answer when it fell due) is timed from when it was
//!   **due**, so a stall delays and counts every request due during it (no
//!   coordinated omission); one whose connection was free is timed from
//!   when it went out, so the generator's own lateness is not charged to the
//!   system. The schedule is kept by a thread sleeping on the OS timer, not
//!   by tokio's millisecond timer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// One kind of request, sent over and over.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Target {
    pub fn get(addr: SocketAddr, path: &str) -> Target {
        Target { addr, method: Method::GET, path: path.to_owned(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Target {
        self.headers.push((name, value.into()));
        self
    }

    pub fn post(mut self, content_type: &str, body: impl Into<Bytes>) -> Target {
        self.method = Method::POST;
        self.body = body.into();
        self.headers.push(("content-type", content_type.to_owned()));
        self
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req =
            Request::builder().method(self.method.clone()).uri(&self.path).header("host", self.addr.to_string());
        for (name, value) in &self.headers {
            req = req.header(*name, value);
        }
        req.body(Full::new(self.body.clone())).expect("a valid request")
    }
}

/// What a run came to.
pub struct Outcome {
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed or were answered otherwise.
    pub errors: u64,
    /// Response bytes received (bodies).
    pub bytes: u64,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.latency.add(other.latency).expect("same histogram bounds");
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request on `sender` (reconnecting if the connection closed);
/// whether it succeeded and the body's length.
async fn send(sender: &mut Option<Sender>, target: &Target) -> (bool, u64) {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = connect(target.addr).await.ok();
    }
    let Some(s) = sender.as_mut() else { return (false, 0) };
    if s.ready().await.is_err() {
        *sender = None;
        return (false, 0);
    }
    match s.send_request(target.request()).await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            match resp.into_body().collect().await {
                Ok(body) => (ok, body.to_bytes().len() as u64),
                Err(_) => {
                    *sender = None;
                    (false, 0)
                }
            }
        }
        Err(_) => {
            *sender = None;
            (false, 0)
        }
    }
}

/// `connections` connections each sending back to back for `duration`.
pub async fn closed_loop(target: &Target, connections: usize, duration: Duration) -> Outcome {
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome { ok: 0, errors: 0, bytes: 0, elapsed: Duration::ZERO, latency: histogram() };
            let mut sender = connect(target.addr).await.ok();
            while Instant::now() < end {
                let sent = Instant::now();
                let (ok, bytes) = send(&mut sender, &target).await;
                record(&mut out, ok, bytes, sent.elapsed());
            }
            out
        }));
    }
    collect(tasks, start).await
}

/// `rate` requests per second in all, due on a fixed schedule spread over
/// `connections`, for `duration`; each timed from when it was due.
///
/// The schedule is kept by a thread of its own that sleeps until each
/// request is due (the OS timer: tens of microseconds late at most, where
/// tokio's timer steps by a millisecond) and hands it to its connection's
/// task; a connection still busy when a request falls due leaves it waiting
/// in its queue, charged from the due time.
pub async fn open_loop(target: &Target, connections: usize, rate: f64, duration: Duration) -> Outcome {
    let start = Instant::now() + Duration::from_millis(20);
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let mut queues = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        queues.push(tx);
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome { ok: 0, errors: 0, bytes: 0, elapsed: Duration::ZERO, latency: histogram() };
            let mut sender = connect(target.addr).await.ok();
            // When the previous answer on this connection came in.
            let mut free_at = start;
            while let Some(due) = due_rx.recv().await {
                let sent = Instant::now();
                let (ok, bytes) = send(&mut sender, &target).await;
                let from = if free_at > due { due } else { sent };
                free_at = Instant::now();
                record(&mut out, ok, bytes, free_at - from);
            }
            out
        }));
    }
    let clock = std::thread::spawn(move || {
        for j in 0..total {
            let due = start + Duration::from_secs_f64(j as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if queues[(j % queues.len() as u64) as usize].send(due).is_err() {
                break;
            }
        }
        // Dropping the queues ends the connections' tasks.
    });
    let out = collect(tasks, start).await;
    let _ = tokio::task::spawn_blocking(move || clock.join()).await;
    out
}

/// Counts one request; failed ones are timed too, so a system that fails
/// fast does not look fast (and its errors are printed beside its figures).
fn record(out: &mut Outcome, ok: bool, bytes: u64, took: Duration) {
    if ok {
        out.ok += 1;
        out.bytes += bytes;
    } else {
        out.errors += 1;
    }
    out.latency.saturating_record((took.as_micros() as u64).max(1));
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Outcome>>, start: Instant) -> Outcome {
    let mut all = Outcome { ok: 0, errors: 0, bytes: 0, elapsed: Duration::ZERO, latency: histogram() };
    for t in tasks {
        all.merge(t.await.expect("a load task"));
    }
    all.elapsed = start.elapsed();
    all
}
