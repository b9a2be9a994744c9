//! What a client connection may hold of the gateway: silent, idle and
//! dripping connections are closed, oversized heads and bodies that never
//! arrive are answered, and a flood of idle connections larger than the
//! gateway's descriptor limit neither locks other clients out nor costs
//! much memory.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Setup, http};

/// Short timeouts, so the tests see them pass.
const SHORT: &str =
    "[limits]\nheader_read_timeout_seconds = 1\nidle_timeout_seconds = 3\nbody_read_timeout_seconds = 1\n";

fn address(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// How long the gateway took to close `stream`, reading (and discarding)
/// what it sends meanwhile; `None` if it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        stream.set_read_timeout(Some(limit.saturating_sub(start.elapsed()).max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// The status of the first response on `stream`.
fn status_of(stream: &mut TcpStream) -> u16 {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("no response: {other:?} after {:?}", String::from_utf8_lossy(&head)),
        }
    }
    String::from_utf8_lossy(&head).split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line")
}

#[test]
fn silent_idle_and_dripping_connections_are_closed() {
    let gw = Setup { extra_config: SHORT, ..Default::default() }.serve();
    let addr = address(&gw.base);

    // Connected and silent: closed once idle for 3 s.
    let mut silent = TcpStream::connect(addr).unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(6)).expect("a silent connection is closed");
    assert!(took >= Duration::from_secs(2), "closed after {took:?}, before the idle timeout");

    // Kept alive after a response: closed once idle too.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    assert_eq!(status_of(&mut kept), 200);
    assert!(closed_within(&mut kept, Duration::from_secs(6)).is_some(), "an idle keep-alive connection is closed");

    // A head dripped a byte at a time: closed on the 1 s header timeout,
    // well before the idle timeout, however steadily it drips.
    let mut drip = TcpStream::connect(addr).unwrap();
    drip.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(6) {
        if drip.write_all(b"X").is_err() || closed_within(&mut drip, Duration::from_millis(200)).is_some() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dripping head keeps its connection");
    assert!(start.elapsed() < Duration::from_millis(2500), "closed after {:?}", start.elapsed());

    // HTTP/2: the preface and settings, then nothing: closed when idle.
    let mut h2 = TcpStream::connect(addr).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    assert!(closed_within(&mut h2, Duration::from_secs(6)).is_some(), "an idle HTTP/2 connection is closed");
}

#[test]
fn a_request_head_over_64_kib_gets_431() {
    let gw = Setup::default().serve();
    let addr = address(&gw.base);
    let request = |size: usize| {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n", "a".repeat(size));
        // The gateway may answer and close before it has read everything.
        let _ = s.write_all(head.as_bytes());
        status_of(&mut s)
    };
    assert_eq!(request(60 * 1024), 200);
    assert_eq!(request(100 * 1024), 431);
}

#[test]
fn a_body_that_does_not_arrive_gets_408() {
    let gw = Setup { extra_config: SHORT, ..Default::default() }.serve();
    let mut s = TcpStream::connect(address(&gw.base)).unwrap();
    s.write_all(
        b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 50\r\n\r\ngrant_type",
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(status_of(&mut s), 408);
    assert!(start.elapsed() < Duration::from_secs(3), "answered after {:?}", start.elapsed());
}

/// Resident memory of process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_flood_of_idle_connections_beyond_the_descriptor_limit_locks_nobody_out() {
    const DESCRIPTORS: u32 = 256;
    let gw = Setup::default().serve_binary_limited(DESCRIPTORS);
    let addr = address(&gw.base);
    let pid = gw.running.pid();
    assert_eq!(http().get(format!("{}/healthz", gw.base)).send().unwrap().status(), 200);
    let before = resident(pid);

    // 300 idle connections from each of two addresses: more than the
    // gateway may open files. They are held until the end of the test.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let flood = runtime.block_on(async {
        let mut held = Vec::new();
        for source in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..300 {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
                match tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await {
                    Ok(Ok(stream)) => held.push(stream),
                    // Refused or closed at once is what a cap does.
                    _ => continue,
                }
            }
        }
        held
    });
    assert!(flood.len() > DESCRIPTORS as usize, "only {} connections were made", flood.len());

    // Another client is served, promptly, while the flood holds on.
    let client = support::http_from([127, 0, 0, 4]);
    let start = Instant::now();
    let answer = client.get(format!("{}/stu3/metadata", gw.base)).send().expect("served during the flood");
    assert_eq!(answer.status(), 200);
    assert!(start.elapsed() < Duration::from_secs(3), "served after {:?}", start.elapsed());

    let cost = resident(pid).saturating_sub(before);
    assert!(cost < 200 << 20, "the flood cost {} MiB", cost >> 20);
    eprintln!(
        "flood of {} connections: served in {:?}, {} KiB more resident",
        flood.len(),
        start.elapsed(),
        cost >> 10
    );
    drop(flood);
}

#[test]
fn a_body_is_read_only_once_the_token_is_accepted() {
    const TENANT: &str = "0f6c2a9e-51c3-4b8e-9d1a-7a3c5e2b9f10";
    let gw = Setup { client_tenants: &[TENANT], extra_config: SHORT, ..Default::default() }.serve();
    let addr = address(&gw.base);
    let withheld = |authorization: &str, path: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        // The head declares a body near the limit; none of it is sent.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let start = Instant::now();
        (status_of(&mut s), start.elapsed())
    };
    // Without a token, or with a forged one: refused at once, body unread.
    for (authorization, path) in [
        ("", "/stu3/Patient/_search"),
        ("", "/stu3"),
        ("Authorization: Bearer not.a.token\r\n", "/dstu2/Patient/_search"),
    ] {
        let (status, took) = withheld(authorization, path);
        assert_eq!(status, 401, "{path} {authorization:?}");
        assert!(took < Duration::from_millis(900), "{path} answered after {took:?}: the body was awaited");
    }
    // With a good token the body is awaited, until the body timeout.
    let token = gw.token(TENANT);
    let (status, took) = withheld(&format!("Authorization: Bearer {token}\r\n"), "/stu3/Patient/_search");
    assert_eq!(status, 408);
    assert!(took >= Duration::from_millis(900), "answered after {took:?}");
}
