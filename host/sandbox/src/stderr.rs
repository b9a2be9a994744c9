//! What a module writes to its standard error, kept for the gateway's log.
//!
//! A Rust module's panic message (with its file and line), a Python
//! traceback or a JavaScript exception is written to stderr just before the
//! module traps; the trap itself says only "unreachable". The gateway keeps
//! the last [`TAIL_BYTES`] a call wrote and reports them with the trap, to
//! the log and to `guest test`, never to the app. Writing never fails (a
//! module that prints on every call keeps working); older text is dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The most recent bytes kept.
pub const TAIL_BYTES: usize = 2048;

/// The end of what a module wrote to stderr; clones share it.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let keep = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (tail.len() + keep.len()).saturating_sub(TAIL_BYTES).min(tail.len());
        tail.drain(..overflow);
        tail.extend(keep);
    }

    /// Forgets what was written so far (a kept instance's next call starts
    /// with none of it).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The text written, trimmed; `None` when there is none.
    pub fn text(&self) -> Option<String> {
        let tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (front, back) = tail.as_slices();
        let text = String::from_utf8_lossy(&[front, back].concat()).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(TAIL_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_written_and_never_refuses() {
        let mut tail = StderrTail::default();
        assert_eq!(tail.text(), None);
        for i in 0..1000 {
            tail.write(Bytes::from(format!("line {i}\n"))).unwrap();
        }
        assert_eq!(tail.check_write().unwrap(), TAIL_BYTES);
        let text = tail.text().unwrap();
        assert!(text.ends_with("line 999"), "{text}");
        assert!(!text.contains("line 1\n"), "{text}");
        assert!(text.len() <= TAIL_BYTES);
        tail.write(Bytes::from(vec![b'x'; 3 * TAIL_BYTES])).unwrap();
        assert_eq!(tail.text().unwrap().len(), TAIL_BYTES);
        tail.clear();
        assert_eq!(tail.text(), None);
    }
}
